//! History (the scheduling log, the audit log, finished jobs) and alerts.

use proto::v1::*;
use tonic::{Request, Response, Status};

use super::*;

pub(super) async fn query_history<S: CatalogStore>(
    api: &ClusterApi<S>,
    request: Request<QueryHistoryRequest>,
) -> Result<Response<QueryHistoryResponse>, Status> {
    let req = request.into_inner();
    if matches!(req.kind(), HistoryKind::Scheduling | HistoryKind::Audit) {
        return api.query_log(&req);
    }
    if req.kind() != HistoryKind::Execution {
        return Err(status(McError::invalid(
            "kind",
            "one of execution, scheduling, audit",
        )));
    }
    // The page token is the key of the last record a page looked at: the next page
    // starts after it, reading only what it returns (and at most SCAN_BUDGET records that
    // a filter skips), never every job from the first.
    let (token, limit) = key_page(&req.page)?;
    let resume = token.map(|t| format!("exec/{t}"));
    let subject = match req.subject.split_once('/') {
        None if req.subject.is_empty() => None,
        Some((kind @ ("job" | "store" | "rg"), id)) => Some((
            kind.to_string(),
            id.parse::<u64>().map_err(|_| {
                status(McError::invalid(
                    "subject",
                    "the id after / must be a number",
                ))
            })?,
        )),
        _ => {
            return Err(status(McError::invalid(
                "subject",
                "expected job/N, store/N or rg/N",
            )));
        }
    };
    let range = req.range.unwrap_or_default();
    // One job's records are one key range; the others are all of them.
    let (first, end) = match &subject {
        Some((k, id)) if k == "job" => (
            format!("exec/{id:016x}/").into_bytes(),
            format!("exec/{id:016x}0").into_bytes(),
        ),
        _ => (b"exec/".to_vec(), b"exec0".to_vec()),
    };
    let mut from = match resume {
        // Just past the last key looked at.
        Some(key) => {
            let mut k = key.into_bytes();
            k.push(0);
            k.max(first)
        }
        None => first,
    };
    let mut entries = Vec::new();
    let mut last_key: Option<Vec<u8>> = None;
    let mut scanned = 0usize;
    let mut more = false;
    'pages: loop {
        let chunk = api.catalog.scan_range(&from, &end, 256).map_err(status)?;
        let exhausted = chunk.len() < 256;
        for (key, value) in chunk {
            if entries.len() == limit || scanned >= SCAN_BUDGET {
                more = true;
                break 'pages;
            }
            scanned += 1;
            let e: record::ExecutionRecord = serde_json::from_slice(&value)
                .map_err(|e| status(McError::corrupt("execution record", e)))?;
            from = key.clone();
            from.push(0);
            last_key = Some(key);
            let keep = match &subject {
                None => true,
                Some((k, id)) if k == "job" => e.job_id == *id,
                Some((k, id)) if k == "store" => e.store == Some(*id),
                Some((_, id)) => e.step.rg() == Some(*id),
            } && (range.start_unix_ms == 0 || e.dispatched_ms >= range.start_unix_ms)
                && (range.end_unix_ms == 0 || e.dispatched_ms < range.end_unix_ms);
            if keep {
                entries.push(HistoryEntry {
                    entry: Some(history_entry::Entry::Execution(convert::execution(&e))),
                });
            }
        }
        if exhausted {
            break;
        }
    }
    let page = page_reply(more, || {
        last_key
            .as_deref()
            .and_then(|k| k.strip_prefix(b"exec/"))
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default()
    });
    Ok(Response::new(QueryHistoryResponse { entries, page }))
}

pub(super) async fn list_alerts<S: CatalogStore>(
    api: &ClusterApi<S>,
    request: Request<ListAlertsRequest>,
) -> Result<Response<ListAlertsResponse>, Status> {
    let req = request.into_inner();
    let range = req.range.unwrap_or_default();
    let mut alerts: Vec<Alert> = logs::alerts(&*api.catalog)
        .map_err(status)?
        .into_iter()
        .filter(|a| req.include_resolved || !a.resolved)
        .filter(|a| a.last_ms >= range.start_unix_ms)
        .filter(|a| range.end_unix_ms == 0 || a.first_ms < range.end_unix_ms)
        .map(|a| Alert {
            id: a.id,
            severity: match a.severity {
                logs::Severity::Info => AlertSeverity::Info,
                logs::Severity::Warning => AlertSeverity::Warning,
                logs::Severity::Critical => AlertSeverity::Critical,
            } as i32,
            subject: a.subject,
            message: a.message,
            first_unix_ms: a.first_ms,
            last_unix_ms: a.last_ms,
            count: a.count,
            resolved: a.resolved,
        })
        .collect();
    alerts.sort_by_key(|a| std::cmp::Reverse(a.last_unix_ms));
    Ok(Response::new(ListAlertsResponse { alerts }))
}

impl<S: CatalogStore> ClusterApi<S> {
    /// QueryHistory over the scheduling log (decisions and refused commands) or the audit log.
    fn query_log(
        &self,
        req: &QueryHistoryRequest,
    ) -> Result<Response<QueryHistoryResponse>, Status> {
        let (token, limit) = key_page(&req.page)?;
        let range = req.range.unwrap_or_default();
        let table = if req.kind() == HistoryKind::Audit {
            logs::AUDIT
        } else {
            logs::SCHEDULING
        };
        let after = token.map(|t| format!("{table}/{t}").into_bytes());
        let q = logs::LogQuery {
            table,
            from_ms: range.start_unix_ms,
            to_ms: range.end_unix_ms,
            subject: &req.subject,
            after: after.as_deref(),
            limit,
        };
        let (entries, more) = if req.kind() == HistoryKind::Audit {
            let (v, more) =
                logs::query::<logs::Audit>(&*self.catalog, &q, |a| &a.subjects).map_err(status)?;
            let entries = v
                .into_iter()
                .map(|a| HistoryEntry {
                    entry: Some(history_entry::Entry::Audit(AuditRecord {
                        id: a.id,
                        at_unix_ms: a.at_ms,
                        principal: a.principal,
                        method: a.method,
                        request: a.request,
                        result: a.result,
                        job_id: a.job_id,
                    })),
                })
                .collect::<Vec<_>>();
            (entries, more)
        } else {
            let (v, more) = logs::query::<logs::Decision>(&*self.catalog, &q, |d| &d.subjects)
                .map_err(status)?;
            let entries = v
                .into_iter()
                .map(|d| HistoryEntry {
                    entry: Some(history_entry::Entry::Decision(SchedulingDecision {
                        id: d.id,
                        at_unix_ms: d.at_ms,
                        scheduler: d.scheduler,
                        subject: d.subjects.join(","),
                        taken: d.taken,
                        reason: d.reason,
                        scores: d
                            .scores
                            .into_iter()
                            .map(|(name, value)| Score { name, value })
                            .collect(),
                        proposed: d.proposed.map(|p| p.to_proto()),
                        job_id: d.job_id,
                    })),
                })
                .collect::<Vec<_>>();
            (entries, more)
        };
        let page = page_reply(more.is_some(), || {
            more.as_deref()
                .and_then(|k| k.strip_prefix(format!("{table}/").as_bytes()))
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default()
        });
        Ok(Response::new(QueryHistoryResponse { entries, page }))
    }
}
