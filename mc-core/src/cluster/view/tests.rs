use super::*;

/// The index rebuilt from the tables alone.
fn rebuilt(v: &ClusterView) -> ViewIndex {
    let mut ix = ViewIndex {
        watch: v.index.watch,
        ..Default::default()
    };
    for r in v.regions.values() {
        ix.count_object(r.object, r.rg, true);
        ix.add_size(r.rg, r.size_bytes, r.keys, true);
        ix.watch_region(r.id, r.size_bytes, r.keys, true);
        if let Some(load) = v.loads.get(&r.id) {
            ix.add_load(r.rg, None, load, true);
        }
    }
    for rg in v.rgs.values() {
        ix.add_rg(rg);
    }
    ix
}

fn same(a: &ViewIndex, b: &ViewIndex) -> bool {
    let sorted = |ix: &ViewIndex| -> BTreeMap<u64, Vec<(u64, u32)>> {
        ix.objects
            .iter()
            .map(|(o, rgs)| {
                let mut rgs = rgs.as_slice().to_vec();
                rgs.sort();
                (*o, rgs)
            })
            .collect()
    };
    a.replicas == b.replicas
        && a.leaders == b.leaders
        && sorted(a) == sorted(b)
        && a.unheard == b.unheard
        && a.rg_totals == b.rg_totals
        && a.small == b.small
        && a.large == b.large
        && a.store_load == b.store_load
}

#[test]
fn the_index_stays_what_the_tables_say_through_random_changes() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut v = ClusterView::default();
    v.set_watch(super::super::index::Watch {
        small_bytes: 20,
        large_bytes: 80,
        large_keys: 8,
    });
    for id in 1..=6 {
        v.put_store(StoreInfo {
            id,
            address: String::new(),
            state: StoreState::Up,
            labels: Default::default(),
            capacity_bytes: 0,
        });
    }
    // Affinity groups of three objects in a row; the map changes now and then (a global
    // index put in its own group, a new grouping).
    let grouping = |width: u64| -> std::sync::Arc<super::super::affinity::Affinity> {
        std::sync::Arc::new(super::super::affinity::Affinity::new(
            (1..=30u64)
                .map(|o| (o, 1 + (o - 1) / width * width))
                .collect(),
        ))
    };
    v.set_affinity(grouping(3));
    for step in 0..5_000 {
        let rg = 1 + next(40);
        let region = 1 + next(200);
        if step % 700 == 699 {
            v.set_affinity(grouping(1 + next(5)));
        }
        match next(10) {
            0 | 1 => v.put_rg(RgInfo {
                id: rg,
                members: (0..3).map(|_| (1 + next(6), Role::Voter)).collect(),
                leader: Some(1 + next(6)),
                regions: (0..next(4)).map(|_| 1 + next(200)).collect(),
                heard: next(2) == 0,
                ..Default::default()
            }),
            2 => {
                v.update_rg(rg, |info| {
                    info.leader = info.members.keys().next().copied();
                    info.members.insert(1 + next(6), Role::Learner);
                });
            }
            3 => {
                v.remove_rg(rg);
            }
            4 | 5 => v.put_region(RegionInfo {
                id: region,
                rg,
                object: 1 + next(30),
                size_bytes: next(100),
                keys: next(10),
                ..Default::default()
            }),
            6 => {
                v.update_region(region, |r| r.object = 1 + next(30));
            }
            7 => {
                v.remove_region(region);
            }
            8 if step % 2 == 0 => v.set_load(
                region,
                RegionLoad {
                    read_bytes_per_sec: next(3) * 100,
                    write_bytes_per_sec: next(2) * 7,
                },
            ),
            _ => {
                let store = 1 + next(6);
                v.update_store(store, |s| s.state = StoreState::Down);
            }
        }
        let want = rebuilt(&v);
        assert!(
            same(&v.index, &want),
            "after step {step}: {:?} {:?} / {:?} {:?} / {:?} {:?}",
            v.index.rg_totals.iter().collect::<Vec<_>>(),
            want.rg_totals.iter().collect::<Vec<_>>(),
            v.index.store_load,
            want.store_load,
            v.index.leaders,
            want.leaders
        );
        let spread = v.spread_groups();
        let walked = v.walk_spread(v.affinity());
        assert_eq!(
            spread.groups().collect::<BTreeSet<_>>(),
            walked,
            "after step {step}: spread groups kept vs walked"
        );
        for g in &walked {
            let rgs: Vec<u64> = v.group_rgs(v.affinity(), *g).into_keys().collect();
            for rg in &rgs {
                assert!(
                    spread.in_rg(*rg).any(|x| x == *g),
                    "step {step}: {g} in {rg}"
                );
            }
        }
        assert!(
            (1..=40).all(|rg| spread.in_rg(rg).all(|g| walked.contains(&g))),
            "step {step}: a group listed by RG is not spread"
        );
    }
    // Every change was logged: reading from the start sees every RG touched.
    assert!(v.changed_since(0).is_some_and(|c| !c.is_empty()));
    assert_eq!(v.changed_since(v.change_seq()), Some(BTreeSet::new()));
    let rg = *v.rgs.keys().next().unwrap();
    let before = v.change_seq();
    v.update_rg(rg, |info| info.applied_index += 1);
    assert_eq!(
        v.changed_since(before),
        Some(BTreeSet::new()),
        "an applied index is not a change of shape"
    );
    v.update_rg(rg, |info| info.offline = !info.offline);
    assert_eq!(v.changed_since(before), Some([rg].into()));
}
