//! RGs and regions as the live view holds them, paged by key.

use proto::v1::*;
use tonic::{Request, Response, Status};

use super::*;

pub(super) async fn list_rgs<S: CatalogStore>(
    api: &ClusterApi<S>,
    request: Request<ListRgsRequest>,
) -> Result<Response<ListRgsResponse>, Status> {
    let req = request.into_inner();
    let (after, limit) = page(&req.page)?;
    // Read in place, from the page's first id on: a viewer looping over pages costs the
    // leader what it reads, not a copy of the view per call.
    let mut rgs: Vec<Rg> = api.cluster.read(|view| match req.store_id {
        0 => view
            .rgs
            .iter_from(after.saturating_add(1))
            .map(|(_, r)| convert::rg(r, view))
            .take(limit + 1)
            .collect(),
        store => view
            .replicas_on_from(store, after.saturating_add(1))
            .take_while(|id| *id > after)
            .filter_map(|id| view.rg(id))
            .map(|r| convert::rg(r, view))
            .take(limit + 1)
            .collect(),
    });
    let more = split_page(&mut rgs, limit);
    let page = page_reply(more, || {
        rgs.last().map(|r| r.id.to_string()).unwrap_or_default()
    });
    Ok(Response::new(ListRgsResponse { rgs, page }))
}

pub(super) async fn get_rg<S: CatalogStore>(
    api: &ClusterApi<S>,
    request: Request<GetRgRequest>,
) -> Result<Response<GetRgResponse>, Status> {
    let id = request.into_inner().rg_id;
    let (rg, regions) = api
        .cluster
        .read(|view| {
            let r = view.rg(id)?;
            let regions = r
                .regions
                .iter()
                .filter_map(|id| view.region(*id))
                .map(|x| convert::region(x, view))
                .collect();
            Some((convert::rg(r, view), regions))
        })
        .ok_or_else(|| status(McError::not_found("rg", id)))?;
    Ok(Response::new(GetRgResponse {
        rg: Some(rg),
        regions,
    }))
}

pub(super) async fn list_regions<S: CatalogStore>(
    api: &ClusterApi<S>,
    request: Request<ListRegionsRequest>,
) -> Result<Response<ListRegionsResponse>, Status> {
    let req = request.into_inner();
    let (after, limit) = page(&req.page)?;
    // A filter that matches little stops after SCAN_BUDGET regions looked at, with a token
    // to go on from the last one (`resume`), instead of a pass over every region.
    let mut resume = None;
    let mut regions: Vec<Region> = api.cluster.read(|view| {
        let matches = |r: &&cluster::RegionInfo| {
            (req.rg_id == 0 || r.rg == req.rg_id)
                && (req.object_id == 0 || r.object == req.object_id)
                && (req.store_id == 0
                    || view
                        .rg(r.rg)
                        .is_some_and(|g| g.members.contains_key(&req.store_id)))
        };
        let from = after.saturating_add(1);
        match req.rg_id {
            // One RG's regions: its own set, not a pass over every region.
            0 => {
                let mut out = Vec::new();
                for (i, (id, r)) in view.regions.iter_from(from).enumerate() {
                    if out.len() > limit {
                        break;
                    }
                    if i >= SCAN_BUDGET {
                        resume = Some(*id - 1);
                        break;
                    }
                    if matches(&r) {
                        out.push(convert::region(r, view));
                    }
                }
                out
            }
            rg => view
                .rg(rg)
                .map(|g| {
                    g.regions
                        .iter()
                        .filter(|id| **id >= from)
                        .filter_map(|id| view.region(*id))
                        .filter(matches)
                        .map(|x| convert::region(x, view))
                        .take(limit + 1)
                        .collect()
                })
                .unwrap_or_default(),
        }
    });
    let more = split_page(&mut regions, limit);
    let page = match resume {
        Some(last) if !more => page_reply(true, || last.to_string()),
        _ => page_reply(more, || {
            regions.last().map(|r| r.id.to_string()).unwrap_or_default()
        }),
    };
    Ok(Response::new(ListRegionsResponse { regions, page }))
}

pub(super) async fn get_region<S: CatalogStore>(
    api: &ClusterApi<S>,
    request: Request<GetRegionRequest>,
) -> Result<Response<GetRegionResponse>, Status> {
    let id = request.into_inner().region_id;
    let (region, rg) = api
        .cluster
        .read(|view| {
            let r = view.region(id)?;
            Some((
                convert::region(r, view),
                view.rg(r.rg).map(|g| convert::rg(g, view)),
            ))
        })
        .ok_or_else(|| status(McError::not_found("region", id)))?;
    Ok(Response::new(GetRegionResponse {
        region: Some(region),
        rg,
    }))
}
