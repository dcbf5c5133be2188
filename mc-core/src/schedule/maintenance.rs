//! Empties a store in maintenance of leaders: every RG it leads is handed to another voter,
//! the one on an Up store (not itself in maintenance) that leads fewest, so the store can be
//! stopped without any region waiting out an election. The store is otherwise left alone for
//! the window: it does not go Down however long it is away (no repair), and the balancers
//! neither give it nor take from it (`up_store_counts`, `up_leader_counts`).

use super::{Ctx, Decision, Scheduler};
use crate::cluster::StoreState;
use crate::jobs::JobSpec;
use crate::jobs::queue::Priority;

pub struct Maintenance;

impl Scheduler for Maintenance {
    fn name(&self) -> &'static str {
        "maintenance"
    }

    fn priority(&self) -> Priority {
        Priority::Repair
    }

    fn default_interval_ms(&self) -> u64 {
        1_000
    }

    fn run(&mut self, ctx: &Ctx) -> Vec<Decision> {
        let view = ctx.view;
        let mut out = Vec::new();
        let cap = ctx.config.max_proposals as usize;
        for store in view.maintenance.keys() {
            for rg in view.led_by(*store) {
                if super::proposed(&out) >= cap {
                    return out;
                }
                if ctx.busy.contains(&rg) {
                    continue;
                }
                let Some(info) = view.rg(rg) else { continue };
                let to = info
                    .voters()
                    .filter(|s| s != store && !view.maintenance.contains_key(s))
                    .filter(|s| view.store(*s).is_some_and(|x| x.state == StoreState::Up))
                    .min_by_key(|s| (view.leader_count(*s), *s));
                out.push(match to {
                    Some(to) => Decision::Propose {
                        spec: JobSpec::TransferLeader { rg, to },
                        reason: format!("store {store} is in maintenance"),
                        scores: vec![("leaders_on_target".into(), view.leader_count(to) as f64)],
                    },
                    None => Decision::Skip {
                        subject: format!("rg/{rg}"),
                        reason: format!(
                            "store {store} is in maintenance and no other voter is on an Up \
                             store to lead RG {rg}"
                        ),
                    },
                });
            }
        }
        out
    }
}
