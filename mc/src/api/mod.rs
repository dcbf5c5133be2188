//! gRPC services: thin — validate, call the core, map errors (in `errors`, one place).

pub mod access;
pub mod audit;
pub mod auth;
pub mod cluster;
pub mod convert;
pub mod errors;
pub mod heartbeat;
pub mod jobs;
pub mod meta;

/// The page part of a list reply: where the next page starts (`next` makes the token), or
/// nothing when this page is the last.
pub(crate) fn page_reply(
    more: bool,
    next: impl FnOnce() -> String,
) -> Option<proto::v1::PageResponse> {
    Some(proto::v1::PageResponse {
        next_page_token: if more { next() } else { String::new() },
    })
}

/// Cuts a fetch of `limit + 1` items to `limit`; true when more followed.
pub(crate) fn split_page<T>(items: &mut Vec<T>, limit: usize) -> bool {
    let more = items.len() > limit;
    items.truncate(limit);
    more
}
