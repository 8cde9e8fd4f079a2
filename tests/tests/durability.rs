//! `kill -9` of `berth up` loses nothing that was acknowledged.

use berth_e2e::{BerthServer, REGION};

#[tokio::test]
async fn kill9_and_restart_keeps_every_acknowledged_write() {
    let mut berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    let mut names = Vec::new();
    for i in 0..25 {
        let name = format!("durable-{i}");
        ecs.create_cluster()
            .cluster_name(&name)
            .send()
            .await
            .unwrap();
        names.push(name);
    }
    ecs.delete_cluster()
        .cluster("durable-0")
        .send()
        .await
        .unwrap();
    // Killed right after the last acknowledged write: no clean shutdown, no flush.
    berth.kill9();
    berth.start_again();
    let ecs = berth.ecs_client(REGION);
    let listed = ecs.list_clusters().send().await.unwrap();
    assert_eq!(listed.cluster_arns().len(), 24, "{listed:?}");
    let d = ecs
        .describe_clusters()
        .clusters("durable-0")
        .clusters("durable-24")
        .send()
        .await
        .unwrap();
    assert_eq!(d.clusters()[0].status(), Some("INACTIVE"));
    assert_eq!(d.clusters()[1].status(), Some("ACTIVE"));
    // The root key survived too (the client above is signed with it), and writes go on.
    ecs.create_cluster()
        .cluster_name("after")
        .send()
        .await
        .unwrap();
}
