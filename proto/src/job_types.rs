//! The one list of job types. the job table, the `JobType` enum, the `JobSpec` oneof,
//! the MC's job modules and `mcctl job …` must all agree with it; tests check the first three
//! here, and the MC checks its modules against it.

use crate::v1::{JobSpec, JobType, StepCommand, StepKind, job_spec, step_command};

/// The level a job works at, as in the job table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobLevel {
    Replica,
    Rg,
    Region,
    Store,
}

/// One row of the job table.
#[derive(Clone, Copy, Debug)]
pub struct JobTypeDef {
    /// The name used in logs, errors, the CLI and the docs, for example "MigrateReplica".
    pub name: &'static str,
    pub level: JobLevel,
    pub job_type: JobType,
    /// The field of the `JobSpec` oneof that carries this job's arguments.
    pub spec_field: &'static str,
}

macro_rules! job_types {
    ($($name:ident, $level:ident, $field:literal;)*) => {
        /// Every job type of the job table, in the table's order.
        pub const JOB_TYPES: &[JobTypeDef] = &[
            $(JobTypeDef {
                name: stringify!($name),
                level: JobLevel::$level,
                job_type: JobType::$name,
                spec_field: $field,
            },)*
        ];

        impl JobSpec {
            /// The type of the job this spec describes; `None` when the oneof is unset.
            pub fn job_type(&self) -> Option<JobType> {
                self.spec.as_ref().map(|spec| match spec {
                    $(job_spec::Spec::$name(_) => JobType::$name,)*
                })
            }
        }
    };
}

job_types! {
    MigrateReplica, Replica, "migrate_replica";
    AddReplica, Replica, "add_replica";
    RemoveReplica, Replica, "remove_replica";
    PromoteReplica, Replica, "promote_replica";
    DemoteReplica, Replica, "demote_replica";
    OnlineReplica, Replica, "online_replica";
    OfflineReplica, Replica, "offline_replica";
    TransferLeader, Replica, "transfer_leader";
    DestroyReplica, Replica, "destroy_replica";
    CreateRg, Rg, "create_rg";
    SplitRg, Rg, "split_rg";
    MergeRg, Rg, "merge_rg";
    OfflineRg, Rg, "offline_rg";
    OnlineRg, Rg, "online_rg";
    DeleteRg, Rg, "delete_rg";
    CreateRegion, Region, "create_region";
    SplitRegion, Region, "split_region";
    MergeRegion, Region, "merge_region";
    DeleteRegion, Region, "delete_region";
    DrainStore, Store, "drain_store";
    CreateRegions, Region, "create_regions";
}

/// Looks a job type up by its name ("MigrateReplica"), as the CLI and config spell it.
pub fn by_name(name: &str) -> Option<&'static JobTypeDef> {
    JOB_TYPES.iter().find(|def| def.name == name)
}

/// The definition of a job type.
pub fn def(job_type: JobType) -> Option<&'static JobTypeDef> {
    JOB_TYPES.iter().find(|def| def.job_type == job_type)
}

impl StepCommand {
    /// The kind of the step this command carries; `None` when the oneof is unset.
    pub fn kind(&self) -> Option<StepKind> {
        use step_command::Step;
        self.step.as_ref().map(|step| match step {
            Step::Create(_) => StepKind::Create,
            Step::AddLearner(_) => StepKind::AddLearner,
            Step::Promote(_) => StepKind::Promote,
            Step::Demote(_) => StepKind::Demote,
            Step::Offline(_) => StepKind::Offline,
            Step::Online(_) => StepKind::Online,
            Step::Remove(_) => StepKind::Remove,
            Step::Destroy(_) => StepKind::Destroy,
            Step::TransferLeader(_) => StepKind::TransferLeader,
            Step::CreateRegion(_) => StepKind::CreateRegion,
            Step::SplitRegion(_) => StepKind::SplitRegion,
            Step::MergeRegion(_) => StepKind::MergeRegion,
            Step::DeleteRegion(_) => StepKind::DeleteRegion,
            Step::SplitRg(_) => StepKind::SplitRg,
            Step::MergeRg(_) => StepKind::MergeRg,
        })
    }
}
