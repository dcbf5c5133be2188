//! Compiles the v1 .proto files with a vendored protoc, so a fresh machine needs no system
//! protoc, and writes the descriptor set that gRPC reflection and the tests read.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

use prost::Message;
use prost_types::FileDescriptorSet;

const PROTOS: &[&str] = &[
    "proto/mc/v1/common.proto",
    "proto/mc/v1/error.proto",
    "proto/mc/v1/meta.proto",
    "proto/mc/v1/job.proto",
    "proto/mc/v1/cluster.proto",
    "proto/mc/v1/heartbeat.proto",
    "proto/mc/v1/store.proto",
    "proto/mc/v1/kv.proto",
    "proto/mc/v1/raft.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if env::var_os("PROTOC").is_none() {
        // SAFETY: build scripts are single-threaded; nothing else reads the environment now.
        unsafe { env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("mc_v1_descriptor.bin");
    // Without the `grpc` feature, messages only: no service code, so no tonic.
    let grpc = env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_client(grpc)
        .build_server(grpc)
        .file_descriptor_set_path(&descriptor_path)
        .compile_protos(PROTOS, &["proto"])?;
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }

    // The round-trip test must cover every message, including ones added later, so the list
    // of messages is derived from the descriptor set rather than written by hand.
    let fds = FileDescriptorSet::decode(fs::read(&descriptor_path)?.as_slice())?;
    let mut list = String::from("for_each_message! {\n");
    for file in &fds.file {
        let package = file.package();
        for message in &file.message_type {
            if !message.nested_type.is_empty() {
                // Nested messages other than map entries would need module paths here.
                let only_maps = message
                    .nested_type
                    .iter()
                    .all(|n| n.options.as_ref().is_some_and(|o| o.map_entry()));
                assert!(
                    only_maps,
                    "nested message in {}: keep messages top-level",
                    message.name()
                );
            }
            writeln!(
                list,
                "    v1::{} => \"{}.{}\",",
                message.name(),
                package,
                message.name()
            )?;
        }
    }
    list.push_str("}\n");
    fs::write(out_dir.join("all_messages.rs"), list)?;
    Ok(())
}
