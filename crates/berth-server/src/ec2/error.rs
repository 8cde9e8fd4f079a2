//! EC2's errors: codes and messages as EC2 sends them (`<Response><Errors><Error>…`).

use berth_wire::AwsError;

use crate::failure::Failure;

pub fn invalid_parameter(message: impl Into<String>) -> AwsError {
    AwsError::new("InvalidParameterValue", 400, message.into())
}

/// `Value (x) for parameter name is invalid. why`
pub fn invalid_value(param: &str, value: &str, why: &str) -> AwsError {
    let tail = if why.is_empty() {
        String::new()
    } else {
        format!(" {why}")
    };
    invalid_parameter(format!(
        "Value ({value}) for parameter {param} is invalid.{tail}"
    ))
}

pub fn missing(param: &str) -> AwsError {
    AwsError::new(
        "MissingParameter",
        400,
        format!("The request must contain the parameter {param}"),
    )
}

pub fn combination(message: impl Into<String>) -> AwsError {
    AwsError::new("InvalidParameterCombination", 400, message.into())
}

pub fn dependency(message: impl Into<String>) -> AwsError {
    AwsError::new("DependencyViolation", 400, message.into())
}

/// The NotFound error of a resource id, by its prefix (`vpc-` → InvalidVpcID.NotFound).
pub fn not_found(id: &str) -> AwsError {
    let (code, what) = match id.split('-').next().unwrap_or("") {
        "vpc" => ("InvalidVpcID.NotFound", "vpc ID"),
        "subnet" => ("InvalidSubnetID.NotFound", "subnet ID"),
        "sg" => ("InvalidGroup.NotFound", "security group"),
        "sgr" => (
            "InvalidSecurityGroupRuleId.NotFound",
            "security group rule ID",
        ),
        "eni" => ("InvalidNetworkInterfaceID.NotFound", "networkInterface ID"),
        "rtb" => ("InvalidRouteTableID.NotFound", "routeTable ID"),
        "acl" => ("InvalidNetworkAclID.NotFound", "network ACL ID"),
        _ => ("InvalidID", "ID"),
    };
    let message = if what == "security group" {
        format!("The security group '{id}' does not exist")
    } else {
        format!("The {what} '{id}' does not exist")
    };
    AwsError::new(code, 400, message)
}

/// A malformed resource id of the kind `prefix` (`Invalid id: "x" (expecting "sg-...")`).
pub fn malformed(id: &str, prefix: &str) -> AwsError {
    let code = match prefix {
        "vpc" => "InvalidVpcID.Malformed",
        "subnet" => "InvalidSubnetID.Malformed",
        "sg" => "InvalidGroupId.Malformed",
        "sgr" => "InvalidSecurityGroupRuleId.Malformed",
        "eni" => "InvalidNetworkInterfaceID.Malformed",
        "rtb" => "InvalidRouteTableID.Malformed",
        "acl" => "InvalidNetworkAclID.Malformed",
        _ => "InvalidID",
    };
    AwsError::new(
        code,
        400,
        format!("Invalid id: \"{id}\" (expecting \"{prefix}-...\")"),
    )
}

/// Checks that `id` looks like an id of kind `prefix` (`prefix-` and 8 or 17 hex digits).
pub fn check_id(id: &str, prefix: &str) -> Result<(), AwsError> {
    let ok = id
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|hex| {
            (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())
        });
    if ok {
        Ok(())
    } else {
        Err(malformed(id, prefix))
    }
}

/// The gateway's authentication and authorisation errors as EC2 words them: it answers
/// AuthFailure for unknown keys and bad signatures and UnauthorizedOperation for a denial.
pub fn gateway(e: AwsError) -> AwsError {
    match e.code.as_ref() {
        "InvalidClientTokenId" | "SignatureDoesNotMatch" | "IncompleteSignature" => AwsError::new(
            "AuthFailure",
            401,
            "AWS was not able to validate the provided access credentials",
        ),
        "ExpiredToken" => AwsError::new("RequestExpired", 400, e.message),
        "AccessDenied" => AwsError::new(
            "UnauthorizedOperation",
            403,
            format!(
                "You are not authorized to perform this operation. {}",
                e.message
            ),
        ),
        _ => e,
    }
}

/// A handler failure as EC2 answers it (store failures become InternalError).
pub fn aws(f: Failure) -> AwsError {
    f.into_aws(|m| AwsError::new("InternalError", 500, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_messages() {
        assert!(check_id("vpc-0123456789abcdef0", "vpc").is_ok());
        assert!(check_id("vpc-12345678", "vpc").is_ok());
        let e = check_id("vpc-x", "vpc").unwrap_err();
        assert_eq!(e.code, "InvalidVpcID.Malformed");
        assert_eq!(e.message, "Invalid id: \"vpc-x\" (expecting \"vpc-...\")");
        assert_eq!(
            not_found("vpc-0123456789abcdef0").message,
            "The vpc ID 'vpc-0123456789abcdef0' does not exist"
        );
        assert_eq!(not_found("sg-1").code, "InvalidGroup.NotFound");
    }
}
