//! Account settings end to end, through aws-sdk-ecs and the aws CLI: PutAccountSetting,
//! PutAccountSettingDefault, DeleteAccountSetting, ListAccountSettings (name and value
//! filters, effectiveSettings, principalArn, pagination), bad values, and the containerInsights
//! account default reaching a new cluster's settings.

// A failed expectation panics, which is how a test fails; helpers unwrap for the same reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_ecs::types::{
    ClusterField, ClusterSetting, ClusterSettingName, Setting, SettingName, SettingType,
};
use berth_e2e::{ACCOUNT_ID, BerthServer, REGION, assert_sdk_error};
use serde_json::json;

fn root() -> String {
    format!("arn:aws:iam::{ACCOUNT_ID}:root")
}

fn user(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT_ID}:user/{name}")
}

fn summary(settings: &[Setting]) -> Vec<(String, String, String)> {
    settings
        .iter()
        .map(|s| {
            (
                s.name().unwrap().as_str().to_owned(),
                s.value().unwrap_or_default().to_owned(),
                s.principal_arn().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn row(name: &str, value: &str, principal: &str) -> (String, String, String) {
    (name.to_owned(), value.to_owned(), principal.to_owned())
}

#[tokio::test]
async fn put_list_delete_through_the_sdk() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);

    // Nothing explicit yet.
    let empty = ecs.list_account_settings().send().await.unwrap();
    assert!(empty.settings().is_empty(), "{empty:?}");

    // PutAccountSetting for the caller (root).
    let put = ecs
        .put_account_setting()
        .name(SettingName::ContainerInsights)
        .value("enhanced")
        .send()
        .await
        .unwrap();
    let s = put.setting().unwrap();
    assert_eq!(s.name(), Some(&SettingName::ContainerInsights));
    assert_eq!(s.value(), Some("enhanced"));
    assert_eq!(s.principal_arn(), Some(root().as_str()));
    assert_eq!(s.r#type(), Some(&SettingType::User));

    // For an IAM user, by principalArn.
    let put = ecs
        .put_account_setting()
        .name(SettingName::ServiceLongArnFormat)
        .value("disabled")
        .principal_arn(user("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.setting().unwrap().principal_arn(),
        Some(user("alice").as_str())
    );

    // PutAccountSettingDefault: the root user's setting.
    let def = ecs
        .put_account_setting_default()
        .name(SettingName::AwsvpcTrunking)
        .value("enabled")
        .send()
        .await
        .unwrap();
    assert_eq!(
        def.setting().unwrap().principal_arn(),
        Some(root().as_str())
    );
    assert_eq!(def.setting().unwrap().value(), Some("enabled"));
    ecs.put_account_setting_default()
        .name(SettingName::FargateTaskRetirementWaitPeriod)
        .value("14")
        .send()
        .await
        .unwrap();

    // Explicit settings of the caller, in the model's order.
    let mine = ecs.list_account_settings().send().await.unwrap();
    assert_eq!(
        summary(mine.settings()),
        [
            row("awsvpcTrunking", "enabled", &root()),
            row("containerInsights", "enhanced", &root()),
            row("fargateTaskRetirementWaitPeriod", "14", &root()),
        ]
    );
    // Of another principal: only its own without effectiveSettings ...
    let alice = ecs
        .list_account_settings()
        .principal_arn(user("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary(alice.settings()),
        [row("serviceLongArnFormat", "disabled", &user("alice"))]
    );
    // ... and with it, its own over the account defaults over ECS's.
    let effective = ecs
        .list_account_settings()
        .principal_arn(user("alice"))
        .effective_settings(true)
        .send()
        .await
        .unwrap();
    // Without maxResults a page holds at most 10 (ECS has more settings than that).
    assert_eq!(effective.settings().len(), 10);
    assert!(effective.next_token().is_some());
    let all_effective: Vec<Setting> = ecs
        .list_account_settings()
        .principal_arn(user("alice"))
        .effective_settings(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let eff = summary(&all_effective);
    assert!(
        eff.len() > 10,
        "every setting has an effective value: {eff:?}"
    );
    assert_eq!(&eff[..10], summary(effective.settings()).as_slice());
    let get = |name: &str| eff.iter().find(|r| r.0 == name).cloned();
    assert_eq!(
        get("serviceLongArnFormat"),
        Some(row("serviceLongArnFormat", "disabled", &user("alice")))
    );
    assert_eq!(
        get("containerInsights"),
        Some(row("containerInsights", "enhanced", &root()))
    );
    assert_eq!(
        get("awsvpcTrunking"),
        Some(row("awsvpcTrunking", "enabled", &root()))
    );
    assert_eq!(get("taskLongArnFormat").unwrap().1, "enabled");
    assert_eq!(get("tagResourceAuthorization").unwrap().1, "on");

    // Filters: name, and name with value.
    let by_name = ecs
        .list_account_settings()
        .name(SettingName::ContainerInsights)
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary(by_name.settings()),
        [row("containerInsights", "enhanced", &root())]
    );
    let by_value = ecs
        .list_account_settings()
        .name(SettingName::ContainerInsights)
        .value("enhanced")
        .send()
        .await
        .unwrap();
    assert_eq!(by_value.settings().len(), 1);
    let other_value = ecs
        .list_account_settings()
        .name(SettingName::ContainerInsights)
        .value("disabled")
        .send()
        .await
        .unwrap();
    assert!(other_value.settings().is_empty());
    let eff_name = ecs
        .list_account_settings()
        .name(SettingName::TaskLongArnFormat)
        .effective_settings(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary(eff_name.settings()),
        [row("taskLongArnFormat", "enabled", &root())]
    );
    // A value filter needs a name.
    assert_sdk_error(
        ecs.list_account_settings().value("enabled").send().await,
        "InvalidParameterException",
    );

    // Pagination over the effective settings.
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = ecs
            .list_account_settings()
            .principal_arn(user("alice"))
            .effective_settings(true)
            .max_results(3)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        assert!(page.settings().len() <= 3);
        paged.extend(summary(page.settings()));
        pages += 1;
        token = page.next_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(paged, eff);
    assert_eq!(pages, eff.len().div_ceil(3));
    let via_paginator: Vec<Setting> = ecs
        .list_account_settings()
        .effective_settings(true)
        .max_results(2)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(via_paginator.len(), eff.len());
    assert_sdk_error(
        ecs.list_account_settings().max_results(11).send().await,
        "InvalidParameterException",
    );
    assert_sdk_error(
        ecs.list_account_settings().next_token("nope!").send().await,
        "InvalidParameterException",
    );

    // DeleteAccountSetting answers with the removed setting; the effective value falls back.
    let deleted = ecs
        .delete_account_setting()
        .name(SettingName::ServiceLongArnFormat)
        .principal_arn(user("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary(&[deleted.setting().unwrap().clone()]),
        [row("serviceLongArnFormat", "disabled", &user("alice"))]
    );
    let after = ecs
        .list_account_settings()
        .principal_arn(user("alice"))
        .name(SettingName::ServiceLongArnFormat)
        .effective_settings(true)
        .send()
        .await
        .unwrap();
    assert_eq!(after.settings()[0].value(), Some("enabled"));
    ecs.delete_account_setting()
        .name(SettingName::ContainerInsights)
        .send()
        .await
        .unwrap();
    let mine = ecs.list_account_settings().send().await.unwrap();
    assert_eq!(
        summary(mine.settings()),
        [
            row("awsvpcTrunking", "enabled", &root()),
            row("fargateTaskRetirementWaitPeriod", "14", &root()),
        ]
    );

    // Settings are regional.
    let west = berth
        .ecs_client("eu-west-1")
        .list_account_settings()
        .send()
        .await
        .unwrap();
    assert!(west.settings().is_empty(), "{west:?}");
}

#[tokio::test]
async fn bad_values_and_principals() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    for (name, value) in [
        (SettingName::ContainerInsights, "on"),
        (SettingName::ServiceLongArnFormat, "yes"),
        (SettingName::TagResourceAuthorization, "enabled"),
        (SettingName::FargateTaskRetirementWaitPeriod, "3"),
        (SettingName::AwsvpcTrunking, ""),
    ] {
        assert_sdk_error(
            ecs.put_account_setting()
                .name(name.clone())
                .value(value)
                .send()
                .await,
            "InvalidParameterException",
        );
        assert_sdk_error(
            ecs.put_account_setting_default()
                .name(name)
                .value(value)
                .send()
                .await,
            "InvalidParameterException",
        );
    }
    // A name the model does not know.
    assert_sdk_error(
        ecs.put_account_setting()
            .name(SettingName::from("noSuchSetting"))
            .value("enabled")
            .send()
            .await,
        "InvalidParameterException",
    );
    // Principals that are not the root, a user or a role of this account.
    for bad in [
        "arn:aws:iam::999999999999:user/bob".to_owned(),
        format!("arn:aws:iam::{ACCOUNT_ID}:group/devs"),
        "bob".to_owned(),
    ] {
        assert_sdk_error(
            ecs.put_account_setting()
                .name(SettingName::TaskLongArnFormat)
                .value("enabled")
                .principal_arn(&bad)
                .send()
                .await,
            "InvalidParameterException",
        );
        assert_sdk_error(
            ecs.list_account_settings().principal_arn(&bad).send().await,
            "InvalidParameterException",
        );
        assert_sdk_error(
            ecs.delete_account_setting()
                .name(SettingName::TaskLongArnFormat)
                .principal_arn(&bad)
                .send()
                .await,
            "InvalidParameterException",
        );
    }
    // A role is a valid principal.
    ecs.put_account_setting()
        .name(SettingName::TaskLongArnFormat)
        .value("disabled")
        .principal_arn(format!("arn:aws:iam::{ACCOUNT_ID}:role/app"))
        .send()
        .await
        .unwrap();
    // fargateTaskRetirementWaitPeriod is for the root user only; guardDutyActivate is
    // read-only.
    assert_sdk_error(
        ecs.put_account_setting()
            .name(SettingName::FargateTaskRetirementWaitPeriod)
            .value("7")
            .principal_arn(user("alice"))
            .send()
            .await,
        "InvalidParameterException",
    );
    assert_sdk_error(
        ecs.put_account_setting()
            .name(SettingName::GuardDutyActivate)
            .value("on")
            .send()
            .await,
        "InvalidParameterException",
    );
    // Nothing but the role's setting was stored.
    let mine = ecs.list_account_settings().send().await.unwrap();
    assert!(mine.settings().is_empty(), "{mine:?}");
}

#[tokio::test]
async fn container_insights_default_reaches_new_clusters() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    let insights = |c: &aws_sdk_ecs::types::Cluster| {
        c.settings()
            .iter()
            .find(|s| s.name() == Some(&ClusterSettingName::ContainerInsights))
            .and_then(|s| s.value())
            .map(str::to_owned)
    };
    let before = ecs
        .create_cluster()
        .cluster_name("before")
        .send()
        .await
        .unwrap();
    assert_eq!(
        insights(before.cluster().unwrap()).as_deref(),
        Some("disabled")
    );

    ecs.put_account_setting_default()
        .name(SettingName::ContainerInsights)
        .value("enabled")
        .send()
        .await
        .unwrap();
    let after = ecs
        .create_cluster()
        .cluster_name("after")
        .send()
        .await
        .unwrap();
    assert_eq!(
        insights(after.cluster().unwrap()).as_deref(),
        Some("enabled")
    );
    let described = ecs
        .describe_clusters()
        .clusters("after")
        .clusters("before")
        .include(ClusterField::Settings)
        .send()
        .await
        .unwrap();
    assert_eq!(
        insights(&described.clusters()[0]).as_deref(),
        Some("enabled")
    );
    // An existing cluster keeps what it had.
    assert_eq!(
        insights(&described.clusters()[1]).as_deref(),
        Some("disabled")
    );
    // A setting given at creation wins over the default.
    let explicit = ecs
        .create_cluster()
        .cluster_name("explicit")
        .settings(
            ClusterSetting::builder()
                .name(ClusterSettingName::ContainerInsights)
                .value("disabled")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        insights(explicit.cluster().unwrap()).as_deref(),
        Some("disabled")
    );
    // The caller's own setting wins over the account default.
    ecs.put_account_setting()
        .name(SettingName::ContainerInsights)
        .value("enhanced")
        .send()
        .await
        .unwrap();
    let own = ecs
        .create_cluster()
        .cluster_name("own")
        .send()
        .await
        .unwrap();
    assert_eq!(
        insights(own.cluster().unwrap()).as_deref(),
        Some("enhanced")
    );
    // Only in this region.
    let west = berth
        .ecs_client("eu-west-1")
        .create_cluster()
        .cluster_name("after")
        .send()
        .await
        .unwrap();
    assert_eq!(
        insights(west.cluster().unwrap()).as_deref(),
        Some("disabled")
    );
}

#[test]
fn account_settings_through_the_cli() {
    let berth = BerthServer::start();
    let out = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "put-account-setting-default",
            "--name",
            "containerInsights",
            "--value",
            "enabled",
        ],
    );
    assert_eq!(
        out["setting"],
        json!({"name": "containerInsights", "value": "enabled",
               "principalArn": root(), "type": "user"})
    );
    let out = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "put-account-setting",
            "--name",
            "taskLongArnFormat",
            "--value",
            "disabled",
            "--principal-arn",
            &user("bob"),
        ],
    );
    assert_eq!(out["setting"]["principalArn"], user("bob"));
    let l = berth.aws_cli_json(REGION, &["ecs", "list-account-settings"]);
    assert_eq!(
        l["settings"],
        json!([{"name": "containerInsights", "value": "enabled",
                "principalArn": root(), "type": "user"}])
    );
    // The CLI pages through every effective setting on its own.
    let all = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "list-account-settings",
            "--effective-settings",
            "--principal-arn",
            &user("bob"),
            "--page-size",
            "2",
        ],
    );
    let all = all["settings"].as_array().unwrap();
    assert!(all.len() >= 10, "{all:?}");
    assert!(
        all.iter().any(|s| s["name"] == "taskLongArnFormat"
            && s["value"] == "disabled"
            && s["principalArn"] == user("bob").as_str()),
        "{all:?}"
    );
    assert!(
        all.iter()
            .any(|s| s["name"] == "containerInsights" && s["value"] == "enabled"),
        "{all:?}"
    );
    let filtered = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "list-account-settings",
            "--name",
            "containerInsights",
            "--value",
            "enabled",
        ],
    );
    assert_eq!(filtered["settings"].as_array().unwrap().len(), 1);
    let d = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "delete-account-setting",
            "--name",
            "taskLongArnFormat",
            "--principal-arn",
            &user("bob"),
        ],
    );
    assert_eq!(d["setting"]["value"], "disabled");
    berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "put-account-setting",
            "--name",
            "containerInsights",
            "--value",
            "maybe",
        ],
        "InvalidParameterException",
    );
    berth.aws_cli_error(
        REGION,
        &["ecs", "list-account-settings", "--value", "enabled"],
        "InvalidParameterException",
    );
    let c = berth.aws_cli_json(REGION, &["ecs", "create-cluster", "--cluster-name", "c"]);
    assert_eq!(
        c["cluster"]["settings"],
        json!([{"name": "containerInsights", "value": "enabled"}])
    );
}
