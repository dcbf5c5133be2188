//! Every v1 message survives encode → decode → encode through its generated Rust type with
//! every field set (each oneof variant in turn). A field the Rust type does not know would be
//! dropped on decode, and the comparison with the descriptor-built message would fail.

use std::collections::{BTreeSet, HashMap};

use prost::Message;
use prost::bytes::Bytes;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, Value,
};

use crate::FILE_DESCRIPTOR_SET;
use crate::job_types::JOB_TYPES;
use crate::v1;

fn pool() -> DescriptorPool {
    DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes")
}

/// A value of the field's kind that differs from the default, so it is always encoded.
fn scalar(kind: &Kind, seed: u32, depth: usize) -> Option<Value> {
    let n = seed + 1;
    Some(match kind {
        Kind::Double => Value::F64(f64::from(n) + 0.5),
        Kind::Float => Value::F32(n as f32 + 0.5),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(-(n as i32)),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(-i64::from(n)),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(n),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(u64::from(n) << 33),
        Kind::Bool => Value::Bool(true),
        Kind::String => Value::String(format!("s{n}")),
        Kind::Bytes => Value::Bytes(Bytes::from(vec![n as u8, 0xff, 0])),
        Kind::Enum(e) => Value::EnumNumber(e.values().map(|v| v.number()).max().unwrap_or(0)),
        Kind::Message(m) => Value::Message(populate(m, seed as usize, depth + 1)?),
    })
}

fn map_key(kind: &Kind, i: u32) -> MapKey {
    match kind {
        Kind::String => MapKey::String(format!("k{i}")),
        Kind::Uint64 | Kind::Fixed64 => MapKey::U64(u64::from(i) + 7),
        Kind::Uint32 | Kind::Fixed32 => MapKey::U32(i + 7),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => MapKey::I64(i64::from(i) - 7),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => MapKey::I32(i as i32 - 7),
        Kind::Bool => MapKey::Bool(i.is_multiple_of(2)),
        other => panic!("not a map key kind: {other:?}"),
    }
}

fn field_value(field: &FieldDescriptor, depth: usize) -> Option<Value> {
    let seed = field.number();
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            unreachable!("map fields are entries")
        };
        let key_kind = entry.map_entry_key_field().kind();
        let value_kind = entry.map_entry_value_field().kind();
        let keys = if matches!(key_kind, Kind::Bool) { 1 } else { 2 };
        let mut map = HashMap::new();
        for i in 0..keys {
            map.insert(map_key(&key_kind, i), scalar(&value_kind, seed + i, depth)?);
        }
        Some(Value::Map(map))
    } else if field.is_list() {
        let items = (0..2)
            .map(|i| scalar(&field.kind(), seed + i, depth))
            .collect::<Option<_>>()?;
        Some(Value::List(items))
    } else {
        scalar(&field.kind(), seed, depth)
    }
}

/// Every field set; in each oneof, the variant `choice` (modulo its size). Stops at depth 4
/// so recursive messages (PartitionSpec, ObjectTreeNode) stay finite.
fn populate(desc: &MessageDescriptor, choice: usize, depth: usize) -> Option<DynamicMessage> {
    if depth > 4 {
        return None;
    }
    let mut message = DynamicMessage::new(desc.clone());
    for field in desc.fields().filter(|f| f.containing_oneof().is_none()) {
        if let Some(value) = field_value(&field, depth) {
            message.set_field(&field, value);
        }
    }
    for oneof in desc.oneofs() {
        let variants: Vec<_> = oneof.fields().collect();
        let field = &variants[choice % variants.len()];
        if let Some(value) = field_value(field, depth) {
            message.set_field(field, value);
        }
    }
    Some(message)
}

fn variants(desc: &MessageDescriptor) -> usize {
    desc.oneofs().map(|o| o.fields().len()).max().unwrap_or(1)
}

fn roundtrip<T: Message + Default + PartialEq + std::fmt::Debug>(
    pool: &DescriptorPool,
    full_name: &str,
) -> usize {
    let desc = pool
        .get_message_by_name(full_name)
        .expect("message is in the descriptor set");
    let n = variants(&desc);
    for choice in 0..n {
        let original = populate(&desc, choice, 0).expect("top level always populates");
        let bytes = original.encode_to_vec();
        let typed = T::decode(bytes.as_slice())
            .unwrap_or_else(|e| panic!("{full_name} variant {choice}: decode failed: {e}"));
        let again = typed.encode_to_vec();
        let back = DynamicMessage::decode(desc.clone(), again.as_slice()).expect("re-decodes");
        assert_eq!(
            back, original,
            "{full_name} variant {choice} changed in a round trip"
        );
        if desc.fields().len() > 0 {
            assert_ne!(
                typed,
                T::default(),
                "{full_name} variant {choice} decoded to the default"
            );
        }
    }
    n
}

#[test]
fn every_message_round_trips_with_every_field_set() {
    let pool = pool();
    let mut seen = BTreeSet::new();
    let mut cases = 0;
    macro_rules! for_each_message {
        ($($ty:ty => $name:literal,)*) => {{
            $( seen.insert($name.to_string()); cases += roundtrip::<$ty>(&pool, $name); )*
        }};
    }
    include!(concat!(env!("OUT_DIR"), "/all_messages.rs"));

    // The generated list must cover the descriptor set (map entries aside).
    let expected: BTreeSet<String> = pool
        .all_messages()
        .filter(|m| !m.is_map_entry() && m.package_name() == "mc.v1")
        .map(|m| m.full_name().to_string())
        .collect();
    assert_eq!(seen, expected);
    assert!(seen.len() > 100, "only {} messages", seen.len());
    assert!(cases > seen.len(), "oneof variants were not expanded");
}

#[test]
fn job_spec_oneof_matches_the_job_type_list() {
    let pool = pool();
    let spec = pool.get_message_by_name("mc.v1.JobSpec").unwrap();
    let oneof_fields: BTreeSet<String> = spec
        .oneofs()
        .flat_map(|o| o.fields().collect::<Vec<_>>())
        .map(|f| f.name().to_string())
        .collect();
    let listed: BTreeSet<String> = JOB_TYPES.iter().map(|d| d.spec_field.to_string()).collect();
    assert_eq!(oneof_fields, listed, "JobSpec oneof and JOB_TYPES disagree");
    assert_eq!(
        listed.len(),
        JOB_TYPES.len(),
        "a spec field is listed twice"
    );

    // Each variant, decoded into the Rust type, reports the listed job type.
    for def in JOB_TYPES {
        let field = spec.get_field_by_name(def.spec_field).unwrap();
        let mut message = DynamicMessage::new(spec.clone());
        message.set_field(&field, field_value(&field, 0).unwrap());
        let typed = v1::JobSpec::decode(message.encode_to_vec().as_slice()).unwrap();
        assert_eq!(typed.job_type(), Some(def.job_type), "{}", def.name);
    }
    assert_eq!(v1::JobSpec::default().job_type(), None);
}

#[test]
fn job_type_enum_matches_the_job_type_list() {
    let pool = pool();
    let job_type = pool.get_enum_by_name("mc.v1.JobType").unwrap();
    let in_enum: BTreeSet<String> = job_type
        .values()
        .filter(|v| v.number() != 0)
        .map(|v| v.name().trim_start_matches("JOB_TYPE_").to_string())
        .collect();
    let listed: BTreeSet<String> = JOB_TYPES
        .iter()
        .map(|d| {
            d.job_type
                .as_str_name()
                .trim_start_matches("JOB_TYPE_")
                .into()
        })
        .collect();
    assert_eq!(in_enum, listed);
    for def in JOB_TYPES {
        // The display name and the enum name spell the same words.
        let snake: String = def
            .name
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
                sep.into_iter()
                    .chain(std::iter::once(c.to_ascii_uppercase()))
            })
            .collect();
        assert_eq!(def.job_type.as_str_name(), format!("JOB_TYPE_{snake}"));
        assert_eq!(def.spec_field.to_ascii_uppercase(), snake);
        assert_eq!(
            crate::job_types::by_name(def.name).map(|d| d.job_type),
            Some(def.job_type)
        );
    }
    // The job table: 9 replica-level, 6 RG-level, 5 region-level (CreateRegions, the DDL
    // path's bulk create, joined the four), 1 store-level job.
    use crate::job_types::JobLevel::*;
    let count = |level| JOB_TYPES.iter().filter(|d| d.level == level).count();
    assert_eq!(
        [count(Replica), count(Rg), count(Region), count(Store)],
        [9, 6, 5, 1]
    );
}

#[test]
fn every_store_step_has_a_step_kind() {
    let pool = pool();
    let command = pool.get_message_by_name("mc.v1.StepCommand").unwrap();
    let kinds = pool.get_enum_by_name("mc.v1.StepKind").unwrap();
    for field in command
        .oneofs()
        .flat_map(|o| o.fields().collect::<Vec<_>>())
    {
        let mut message = DynamicMessage::new(command.clone());
        message.set_field(&field, field_value(&field, 0).unwrap());
        let typed = v1::StepCommand::decode(message.encode_to_vec().as_slice()).unwrap();
        let kind = typed.kind().expect("variant set");
        let enum_name = format!("STEP_KIND_{}", field.name().to_ascii_uppercase());
        assert_eq!(kind.as_str_name(), enum_name);
        assert!(kinds.get_value_by_name(&enum_name).is_some());
    }
    assert_eq!(v1::StepCommand::default().kind(), None);
}
