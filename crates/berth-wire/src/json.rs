//! The AWS JSON 1.0/1.1 protocols: request bodies decoded into generated shapes with AWS's
//! validation messages, replies encoded.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::AwsError;

/// Decodes a request body into an operation's input. An empty body is an empty object, as
/// AWS treats it. `validation_code` is the service's error code for a member that breaks the
/// model's constraints (a missing required member, a value outside an enum).
pub fn decode_with<T: DeserializeOwned>(
    body: &[u8],
    validation_code: (&'static str, u16),
) -> Result<T, AwsError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    match result {
        Ok(v) => {
            de.end().map_err(|e| {
                AwsError::serialization(format!("trailing characters after the request body: {e}"))
            })?;
            Ok(v)
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            Err(classify(&path, &inner, validation_code))
        }
    }
}

/// Decodes an already-parsed JSON value (the query protocols build one from a form) with the
/// same validation messages as a body.
pub fn decode_value<T: DeserializeOwned>(
    value: serde_json::Value,
    validation_code: (&'static str, u16),
) -> Result<T, AwsError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        classify(&path, &inner, validation_code)
    })
}

/// Decodes with the generic validation code `ValidationException`; generated dispatchers
/// use [`decode`] through their service's code instead.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, AwsError> {
    decode_with(body, ("ValidationException", 400))
}

fn classify(path: &str, err: &serde_json::Error, validation_code: (&'static str, u16)) -> AwsError {
    use serde_json::error::Category;
    let msg = err.to_string();
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => AwsError::serialization(format!(
            "The request body is not valid JSON: {}",
            strip_position(&msg)
        )),
        Category::Data => {
            if let Some(field) = between(&msg, "missing field `", "`") {
                let at = if path == "." || path.is_empty() {
                    field.to_string()
                } else {
                    format!("{path}.{field}")
                };
                AwsError::new(
                    validation_code.0,
                    validation_code.1,
                    format!(
                        "1 validation error detected: Value null at '{at}' failed to satisfy constraint: Member must not be null"
                    ),
                )
            } else if let Some(value) = between(&msg, "unknown variant `", "`") {
                let allowed = msg
                    .split_once("expected ")
                    .map(|(_, s)| strip_position(s.trim_start_matches("one of ")).replace('`', ""))
                    .unwrap_or_default();
                AwsError::new(
                    validation_code.0,
                    validation_code.1,
                    format!(
                        "1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: Member must satisfy enum value set: [{allowed}]"
                    ),
                )
            } else {
                AwsError::serialization(format!(
                    "Invalid value at '{path}': {}",
                    strip_position(&msg)
                ))
            }
        }
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = s.find(start)? + start.len();
    let j = s[i..].find(end)? + i;
    Some(&s[i..j])
}

fn strip_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Encodes an operation's output. Operations without output answer `{}`.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, AwsError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| AwsError::internal(format!("cannot encode the reply: {e}")))?;
    if bytes == b"null" {
        Ok(b"{}".to_vec())
    } else {
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Input {
        cluster: String,
        #[serde(rename = "launchType")]
        launch_type: Option<Kind>,
        count: Option<i32>,
    }
    #[derive(Debug, serde::Deserialize)]
    enum Kind {
        #[serde(rename = "EC2")]
        Ec2,
    }

    const CODE: (&str, u16) = ("InvalidParameterException", 400);

    #[test]
    fn missing_member_names_the_field() {
        let e = decode_with::<Input>(b"{}", CODE).unwrap_err();
        assert_eq!(e.code, "InvalidParameterException");
        assert!(
            e.message.contains("Value null at 'cluster'"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_enum_names_field_and_values() {
        let e = decode_with::<Input>(br#"{"cluster":"a","launchType":"X"}"#, CODE).unwrap_err();
        assert!(
            e.message.contains("Value 'X' at 'launchType'"),
            "{}",
            e.message
        );
        assert!(e.message.contains("[EC2]"), "{}", e.message);
    }

    #[test]
    fn malformed_json_is_serialization_exception() {
        let e = decode_with::<Input>(b"{\"cluster\":", CODE).unwrap_err();
        assert_eq!(e.code, "SerializationException");
        let e = decode_with::<Input>(br#"{"cluster":"a","count":"x"}"#, CODE).unwrap_err();
        assert_eq!(e.code, "SerializationException");
        assert!(e.message.contains("count"), "{}", e.message);
    }

    #[test]
    fn empty_body_is_empty_object() {
        #[derive(serde::Deserialize)]
        struct Empty {}
        assert!(decode_with::<Empty>(b"", CODE).is_ok());
    }
}
