//! DDL requests racing each other on real processes: a table created while a Drop of another
//! is still deleting that table's RG must not be placed in it (it would be deleted with it, or
//! fail with its RG gone under it). Every acknowledged row of the new table reads back once the
//! Drop ended.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use mc::client::Client;
use proto::v1::*;
use store_node::security::pki::TestPki;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_created_while_a_drop_empties_an_rg_is_not_placed_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let mc_addr = free_addr();
    // One table (and its index) per RG; a stuck request answers within 10 s.
    let _mc = start_mc_with(
        1,
        &mc_addr,
        &dir.path().join("mc"),
        &[],
        &["--ddl-rg-max-regions", "2", "--ddl-wait-ms", "10000"],
    );
    jobs(&mc_addr).await;
    let mut stores = Vec::new();
    for id in 1..=3 {
        stores.push(start_store(id, dir.path(), std::slice::from_ref(&mc_addr)).await);
    }
    wait_stores_up(&mc_addr, 3).await;
    let client = Client::connect(&mc_addr, TestPki::shared().admin())
        .await
        .unwrap();
    let mut meta = client.meta();
    meta.create_database(CreateDatabaseRequest {
        request_id: "db".into(),
        name: "app".into(),
    })
    .await
    .unwrap();
    for round in 0..6 {
        let old = meta
            .create_table(app_table(&format!("old{round}"), 1))
            .await
            .unwrap()
            .into_inner()
            .table
            .unwrap();
        let old_rg = client.load_object(old.id).await.unwrap()[0].rg_id;
        let drop = DropObjectRequest {
            request_id: format!("drop{round}"),
            object: Some(ObjectRef {
                target: Some(object_ref::Target::Id(old.id)),
            }),
            no_wait: true,
        };
        meta.drop_object(drop.clone()).await.unwrap();
        // As soon as the old table's routes are gone, a new table: its RG is still there,
        // empty, about to be deleted.
        let deadline = Instant::now() + Duration::from_secs(20);
        while client
            .load_object(old.id)
            .await
            .is_ok_and(|routes| !routes.is_empty())
        {
            assert!(
                Instant::now() < deadline,
                "round {round}: the drop never ran"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let started = Instant::now();
        let new = meta
            .create_table(app_table(&format!("new{round}"), 1))
            .await
            .unwrap_or_else(|s| panic!("round {round}: CreateTable {s:?}"))
            .into_inner()
            .table
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "round {round}: CreateTable took {:?}",
            started.elapsed()
        );
        let routes = client.load_object(new.id).await.unwrap();
        assert!(
            routes.iter().all(|r| r.rg_id != old_rg),
            "round {round}: the new table was placed in RG {old_rg}, which the drop deletes"
        );
        let row = topology::keys::key(topology::ObjectId(new.id), b"row");
        client.put(&row, b"kept").await.unwrap();
        // The drop ends; the new table's row is still there.
        meta.drop_object(DropObjectRequest {
            no_wait: false,
            ..drop
        })
        .await
        .unwrap();
        assert_eq!(
            client.get(&row).await.unwrap(),
            Some(b"kept".to_vec()),
            "round {round}: an acknowledged row was deleted with the dropped table's RG"
        );
    }
    for s in stores {
        s.stop().await;
    }
}
