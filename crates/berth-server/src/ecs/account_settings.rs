//! Account settings: PutAccountSetting, PutAccountSettingDefault, DeleteAccountSetting,
//! ListAccountSettings.
//!
//! Settings are regional, as on ECS. Each principal's explicit setting is stored as the wire
//! `Setting` under `<principalArn>|<name>`; the account default is the root user's setting.
//! The value in effect for a principal is its own, else the account default, else ECS's
//! built-in default.

use berth_store::Tx;
use berth_wire::ecs::shapes as s;
use berth_wire::{AwsError, RequestContext};

use super::Ecs;
use super::common::{Page, aws, invalid, kind, scope};
use crate::failure::Failure;

/// The root user of the request's account, whose settings are the account defaults.
pub fn root_arn(ctx: &RequestContext) -> String {
    format!("arn:aws:iam::{}:root", ctx.account_id)
}

/// The principal whose settings a caller has: an assumed-role session acts as its role;
/// a caller without an IAM identity (federated users) as the root user.
fn caller_principal(ctx: &RequestContext) -> String {
    let p = ctx.principal_arn.as_str();
    if let Some(rest) = p.strip_prefix(&format!("arn:aws:sts::{}:assumed-role/", ctx.account_id))
        && let Some((role, _session)) = rest.split_once('/')
    {
        return format!("arn:aws:iam::{}:role/{role}", ctx.account_id);
    }
    if p.starts_with(&format!("arn:aws:iam::{}:", ctx.account_id)) {
        return p.to_string();
    }
    root_arn(ctx)
}

/// Checks a `principalArn` parameter: the root user, an IAM user or an IAM role of the
/// request's account.
pub fn validate_principal(ctx: &RequestContext, arn: &str) -> Result<(), AwsError> {
    let prefix = format!("arn:aws:iam::{}:", ctx.account_id);
    let ok = match arn.strip_prefix(&prefix) {
        Some("root") => true,
        Some(rest) => rest
            .strip_prefix("user/")
            .or_else(|| rest.strip_prefix("role/"))
            .is_some_and(|name| !name.is_empty() && !name.ends_with('/')),
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "The specified principalArn '{arn}' is not valid. Specify the ARN of the root user, an IAM user or an IAM role of this account."
        )))
    }
}

/// The values ECS accepts for a setting.
pub fn allowed_values(name: s::SettingName) -> &'static [&'static str] {
    use s::SettingName as N;
    match name {
        N::ContainerInsights => &["enhanced", "enabled", "disabled"],
        N::TagResourceAuthorization => &["on", "off"],
        N::FargateTaskRetirementWaitPeriod => &["0", "7", "14"],
        N::DefaultLogDriverMode => &["blocking", "non-blocking"],
        _ => &["enabled", "disabled"],
    }
}

/// ECS's built-in value of a setting nobody has set.
pub fn builtin_default(name: s::SettingName) -> &'static str {
    use s::SettingName as N;
    match name {
        N::ServiceLongArnFormat | N::TaskLongArnFormat | N::ContainerInstanceLongArnFormat => {
            "enabled"
        }
        N::TagResourceAuthorization => "on",
        N::FargateTaskRetirementWaitPeriod => "7",
        N::DefaultLogDriverMode => "non-blocking",
        _ => "disabled",
    }
}

/// Checks `value` for setting `name` as ECS does.
pub fn validate_value(name: s::SettingName, value: &str) -> Result<(), AwsError> {
    if allowed_values(name).contains(&value) {
        Ok(())
    } else {
        Err(invalid("Invalid setting 'value'"))
    }
}

fn setting_type(name: s::SettingName) -> s::SettingType {
    if name == s::SettingName::GuardDutyActivate {
        s::SettingType::AwsManaged
    } else {
        s::SettingType::User
    }
}

/// Every setting name, in the model's order.
fn all_names() -> impl Iterator<Item = s::SettingName> {
    s::SettingName::VALUES
        .iter()
        .filter_map(|v| s::SettingName::from_wire(v))
}

fn record_id(principal: &str, name: s::SettingName) -> String {
    format!("{principal}|{}", name.as_str())
}

fn explicit(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    principal: &str,
    name: s::SettingName,
) -> Result<Option<s::Setting>, Failure> {
    Ok(tx
        .get_json::<s::Setting>(
            scope(ctx),
            kind::ACCOUNT_SETTING,
            &record_id(principal, name),
        )?
        .map(|(v, _)| v))
}

/// The setting in effect for `principal`: its own, else the account default, else ECS's.
fn effective(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    principal: &str,
    name: s::SettingName,
) -> Result<s::Setting, Failure> {
    if let Some(own) = explicit(tx, ctx, principal, name)? {
        return Ok(own);
    }
    let root = root_arn(ctx);
    if let Some(default) = explicit(tx, ctx, &root, name)? {
        return Ok(default);
    }
    Ok(s::Setting {
        name: Some(name),
        value: Some(builtin_default(name).into()),
        principal_arn: Some(root),
        r#type: Some(setting_type(name)),
    })
}

/// The value of account setting `name` in effect for the caller: the caller's own, else the
/// account default, else `None` (ECS's built-in default applies).
pub fn effective_value(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    name: &str,
) -> Result<Option<String>, Failure> {
    let Some(name) = s::SettingName::from_wire(name) else {
        return Ok(None);
    };
    let mine = caller_principal(ctx);
    if let Some(own) = explicit(tx, ctx, &mine, name)? {
        return Ok(own.value);
    }
    Ok(explicit(tx, ctx, &root_arn(ctx), name)?.and_then(|d| d.value))
}

fn store(
    ecs: &Ecs,
    ctx: &RequestContext,
    principal: String,
    name: s::SettingName,
    value: String,
) -> Result<s::Setting, AwsError> {
    if name == s::SettingName::GuardDutyActivate {
        return Err(invalid(
            "The guardDutyActivate account setting is read-only: Amazon GuardDuty manages it.",
        ));
    }
    validate_value(name, &value)?;
    if name == s::SettingName::FargateTaskRetirementWaitPeriod && principal != root_arn(ctx) {
        return Err(invalid(
            "The fargateTaskRetirementWaitPeriod account setting can only be set for the root user.",
        ));
    }
    let setting = s::Setting {
        name: Some(name),
        value: Some(value),
        principal_arn: Some(principal.clone()),
        r#type: Some(setting_type(name)),
    };
    ecs.store
        .write(|tx| -> Result<s::Setting, Failure> {
            tx.put(
                scope(ctx),
                kind::ACCOUNT_SETTING,
                &record_id(&principal, name),
                None,
                &setting,
            )?;
            Ok(setting.clone())
        })
        .map_err(aws)
}

pub fn put(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::PutAccountSettingRequest,
) -> Result<s::PutAccountSettingResponse, AwsError> {
    let principal = match input.principal_arn.as_deref() {
        Some(p) if !p.is_empty() => {
            validate_principal(ctx, p)?;
            p.to_string()
        }
        _ => caller_principal(ctx),
    };
    let setting = store(ecs, ctx, principal, input.name, input.value)?;
    Ok(s::PutAccountSettingResponse {
        setting: Some(setting),
    })
}

pub fn put_default(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::PutAccountSettingDefaultRequest,
) -> Result<s::PutAccountSettingDefaultResponse, AwsError> {
    let setting = store(ecs, ctx, root_arn(ctx), input.name, input.value)?;
    Ok(s::PutAccountSettingDefaultResponse {
        setting: Some(setting),
    })
}

pub fn delete(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::DeleteAccountSettingRequest,
) -> Result<s::DeleteAccountSettingResponse, AwsError> {
    let principal = match input.principal_arn.as_deref() {
        Some(p) if !p.is_empty() => {
            validate_principal(ctx, p)?;
            p.to_string()
        }
        _ => caller_principal(ctx),
    };
    let name = input.name;
    if name == s::SettingName::GuardDutyActivate {
        return Err(invalid(
            "The guardDutyActivate account setting is read-only: Amazon GuardDuty manages it.",
        ));
    }
    ecs.store
        .write(|tx| -> Result<s::DeleteAccountSettingResponse, Failure> {
            let id = record_id(&principal, name);
            // The reply shows the setting that was removed; when there was none, the one
            // in effect for the principal.
            let setting = match tx.get_json::<s::Setting>(scope(ctx), kind::ACCOUNT_SETTING, &id)? {
                Some((old, _)) => {
                    tx.delete(scope(ctx), kind::ACCOUNT_SETTING, &id)?;
                    old
                }
                None => {
                    let mut e = effective(tx, ctx, &principal, name)?;
                    e.principal_arn = Some(principal.clone());
                    e
                }
            };
            Ok(s::DeleteAccountSettingResponse {
                setting: Some(setting),
            })
        })
        .map_err(aws)
}

pub fn list(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::ListAccountSettingsRequest,
) -> Result<s::ListAccountSettingsResponse, AwsError> {
    let page = Page::parse(input.next_token.as_deref(), input.max_results, 10)?;
    if input.value.is_some() && input.name.is_none() {
        return Err(invalid(
            "To filter account settings by value, you must also specify an account setting name.",
        ));
    }
    let principal = match input.principal_arn.as_deref() {
        Some(p) if !p.is_empty() => {
            validate_principal(ctx, p)?;
            p.to_string()
        }
        _ => caller_principal(ctx),
    };
    let effective_settings = input.effective_settings.unwrap_or(false);
    ecs.store
        .read(|tx| -> Result<s::ListAccountSettingsResponse, Failure> {
            // (position in the model's order, setting): the position is the page token.
            let mut found: Vec<(usize, s::Setting)> = Vec::new();
            for (i, name) in all_names().enumerate() {
                if input.name.is_some_and(|n| n != name) {
                    continue;
                }
                let setting = if effective_settings {
                    Some(effective(tx, ctx, &principal, name)?)
                } else {
                    explicit(tx, ctx, &principal, name)?
                };
                let Some(setting) = setting else { continue };
                if input
                    .value
                    .as_ref()
                    .is_some_and(|v| setting.value.as_ref() != Some(v))
                {
                    continue;
                }
                found.push((i, setting));
            }
            let after = match &page.after {
                Some(a) => Some(
                    a.parse::<usize>()
                        .map_err(|_| invalid("The specified nextToken is invalid."))?,
                ),
                None => None,
            };
            found.retain(|(i, _)| after.is_none_or(|a| *i > a));
            let next_token = page.next_token(&mut found, |(i, _)| i.to_string());
            Ok(s::ListAccountSettingsResponse {
                settings: Some(found.into_iter().map(|(_, s)| s).collect()),
                next_token,
            })
        })
        .map_err(aws)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ctx(principal: &str) -> RequestContext {
        RequestContext {
            principal_arn: principal.into(),
            ..crate::test_support::context(0)
        }
    }

    const ROOT: &str = "arn:aws:iam::123456789012:root";
    const ALICE: &str = "arn:aws:iam::123456789012:user/alice";

    #[test]
    fn value_rules() {
        use s::SettingName as N;
        assert!(validate_value(N::ServiceLongArnFormat, "enabled").is_ok());
        assert!(validate_value(N::ServiceLongArnFormat, "ENABLED").is_err());
        assert!(validate_value(N::ContainerInsights, "enhanced").is_ok());
        assert!(validate_value(N::AwsvpcTrunking, "enhanced").is_err());
        assert!(validate_value(N::TagResourceAuthorization, "on").is_ok());
        assert!(validate_value(N::TagResourceAuthorization, "enabled").is_err());
        assert!(validate_value(N::FargateTaskRetirementWaitPeriod, "14").is_ok());
        assert!(validate_value(N::FargateTaskRetirementWaitPeriod, "3").is_err());
        assert!(validate_value(N::DefaultLogDriverMode, "non-blocking").is_ok());
        assert_eq!(
            validate_value(N::DefaultLogDriverMode, "x")
                .unwrap_err()
                .message,
            "Invalid setting 'value'"
        );
    }

    #[test]
    fn principal_rules() {
        let c = ctx(ROOT);
        assert!(validate_principal(&c, ROOT).is_ok());
        assert!(validate_principal(&c, ALICE).is_ok());
        assert!(validate_principal(&c, "arn:aws:iam::123456789012:role/path/r").is_ok());
        assert!(validate_principal(&c, "arn:aws:iam::999999999999:root").is_err());
        assert!(validate_principal(&c, "arn:aws:iam::123456789012:group/g").is_err());
        assert!(validate_principal(&c, "alice").is_err());
        assert_eq!(
            caller_principal(&ctx(
                "arn:aws:sts::123456789012:assumed-role/deployer/session-1"
            )),
            "arn:aws:iam::123456789012:role/deployer"
        );
        assert_eq!(caller_principal(&ctx("")), ROOT);
    }

    #[test]
    fn effective_values_layer() {
        let ecs = Ecs::new(Arc::new(berth_store::Store::open_in_memory().unwrap()));
        let (root, alice) = (ctx(ROOT), ctx(ALICE));
        let value = |c: &RequestContext| {
            ecs.store
                .read(|tx| effective_value(tx, c, "containerInsights"))
                .unwrap()
        };
        assert_eq!(value(&alice), None);
        put_default(
            &ecs,
            &root,
            s::PutAccountSettingDefaultRequest {
                name: s::SettingName::ContainerInsights,
                value: "enabled".into(),
            },
        )
        .unwrap();
        assert_eq!(value(&alice).as_deref(), Some("enabled"));
        let r = put(
            &ecs,
            &alice,
            s::PutAccountSettingRequest {
                name: s::SettingName::ContainerInsights,
                value: "enhanced".into(),
                principal_arn: None,
            },
        )
        .unwrap();
        assert_eq!(r.setting.unwrap().principal_arn.as_deref(), Some(ALICE));
        assert_eq!(value(&alice).as_deref(), Some("enhanced"));
        assert_eq!(value(&root).as_deref(), Some("enabled"));
        // Alice's own settings, then the effective ones.
        let own = list(&ecs, &alice, s::ListAccountSettingsRequest::default())
            .unwrap()
            .settings
            .unwrap();
        assert_eq!(own.len(), 1);
        let eff = list(
            &ecs,
            &alice,
            s::ListAccountSettingsRequest {
                effective_settings: Some(true),
                ..Default::default()
            },
        )
        .unwrap()
        .settings
        .unwrap();
        // Eleven settings: the default page of ten, then one more.
        assert_eq!(eff.len(), 10);
        let tag_auth = eff
            .iter()
            .find(|s| s.name == Some(s::SettingName::TagResourceAuthorization))
            .unwrap();
        assert_eq!(tag_auth.value.as_deref(), Some("on"));
        // Paging through the effective settings three at a time sees them all once.
        let mut seen = 0;
        let mut token = None;
        loop {
            let p = list(
                &ecs,
                &alice,
                s::ListAccountSettingsRequest {
                    effective_settings: Some(true),
                    max_results: Some(3),
                    next_token: token,
                    ..Default::default()
                },
            )
            .unwrap();
            seen += p.settings.unwrap().len();
            token = p.next_token;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(seen, 11);
        delete(
            &ecs,
            &alice,
            s::DeleteAccountSettingRequest {
                name: s::SettingName::ContainerInsights,
                principal_arn: None,
            },
        )
        .unwrap();
        assert_eq!(value(&alice).as_deref(), Some("enabled"));
        // Only the root user may set the Fargate retirement wait period.
        let err = put(
            &ecs,
            &alice,
            s::PutAccountSettingRequest {
                name: s::SettingName::FargateTaskRetirementWaitPeriod,
                value: "7".into(),
                principal_arn: None,
            },
        )
        .unwrap_err();
        assert_eq!(err.code, "InvalidParameterException");
        assert!(
            list(
                &ecs,
                &alice,
                s::ListAccountSettingsRequest {
                    value: Some("on".into()),
                    ..Default::default()
                }
            )
            .is_err()
        );
    }
}
