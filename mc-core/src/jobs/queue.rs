//! The command queue's order: who goes first when the MC may start only so many jobs.
//! Every job belongs to a class — admin (an SRE or the API), repair (the replica checker),
//! DDL (a SQL engine's hooks), balance (the balancers) — and, when the running-jobs limit is
//! reached, Pending jobs start by class in the configured order, oldest first within a class.
//! A repair never waits behind a rebalance.

use serde::{Deserialize, Serialize};

use crate::error::{McError, Result};

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[default]
    Admin,
    Repair,
    Ddl,
    Balance,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Admin,
        Priority::Repair,
        Priority::Ddl,
        Priority::Balance,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Priority::Admin => "admin",
            Priority::Repair => "repair",
            Priority::Ddl => "ddl",
            Priority::Balance => "balance",
        }
    }

    /// `SubmitJobRequest.priority`: 0 takes the caller's default class; 1-4 name a class.
    pub fn from_wire(value: u32, default: Priority) -> Result<Priority> {
        match value {
            0 => Ok(default),
            1..=4 => Ok(Priority::ALL[value as usize - 1]),
            other => Err(McError::invalid(
                "priority",
                format!("{other} is not a class (1 admin, 2 repair, 3 ddl, 4 balance; 0 default)"),
            )),
        }
    }

    pub fn to_wire(self) -> u32 {
        Priority::ALL.iter().position(|p| *p == self).unwrap_or(0) as u32 + 1
    }

    fn parse(name: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.name() == name.trim())
    }
}

/// The classes, most urgent first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorityOrder(pub Vec<Priority>);

impl Default for PriorityOrder {
    fn default() -> Self {
        PriorityOrder(Priority::ALL.to_vec())
    }
}

impl PriorityOrder {
    /// 0 for the most urgent class.
    pub fn rank(&self, p: Priority) -> usize {
        self.0.iter().position(|q| *q == p).unwrap_or(self.0.len())
    }

    /// `admin,repair,ddl,balance` or any order of the four, each once.
    pub fn parse(value: &str) -> std::result::Result<Self, String> {
        let mut order = Vec::new();
        for name in value.split(',') {
            let p =
                Priority::parse(name).ok_or_else(|| format!("`{}` is not a class", name.trim()))?;
            if order.contains(&p) {
                return Err(format!("`{}` is listed twice", p.name()));
            }
            order.push(p);
        }
        if order.len() != Priority::ALL.len() {
            return Err("name each of admin, repair, ddl and balance once".into());
        }
        Ok(PriorityOrder(order))
    }

    pub fn render(&self) -> String {
        self.0
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_parse_and_rank() {
        let order = PriorityOrder::parse("repair, admin,ddl,balance").unwrap();
        assert_eq!(order.rank(Priority::Repair), 0);
        assert_eq!(order.rank(Priority::Balance), 3);
        assert_eq!(order.render(), "repair,admin,ddl,balance");
        assert_eq!(
            PriorityOrder::parse("admin,admin,ddl,balance").unwrap_err(),
            "`admin` is listed twice"
        );
        assert!(PriorityOrder::parse("admin,ddl").is_err());
        assert_eq!(
            PriorityOrder::parse("admin,urgent,ddl,balance").unwrap_err(),
            "`urgent` is not a class"
        );
    }

    #[test]
    fn wire_values_name_classes() {
        assert_eq!(
            Priority::from_wire(0, Priority::Ddl).unwrap(),
            Priority::Ddl
        );
        assert_eq!(
            Priority::from_wire(2, Priority::Admin).unwrap(),
            Priority::Repair
        );
        assert_eq!(Priority::Balance.to_wire(), 4);
        match Priority::from_wire(9, Priority::Admin) {
            Err(McError::InvalidArgument { field, .. }) => assert_eq!(field, "priority"),
            other => panic!("{other:?}"),
        }
    }
}
