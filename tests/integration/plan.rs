//! The request planner against hand-worked plans: merging, the gap rule at
//! its boundary, the 125-register limit, kinds kept apart, overlapping points
//! and splitting after an exception.

use emgate::profiles::{DataType, PointDef, RegisterKind};
use emgate::sources::modbus::plan::{PlanLimits, PlannedRead, PointSlot, plan, split};

fn pt(register: RegisterKind, address: u16, data_type: DataType) -> PointDef {
    PointDef::new(&format!("p{address}"), register, address, data_type)
}

fn slot(point: u16, offset: u16) -> PointSlot {
    PointSlot { point, offset }
}

fn ranges(reads: &[PlannedRead]) -> Vec<(RegisterKind, u16, u16)> {
    reads.iter().map(|r| (r.kind, r.start, r.count)).collect()
}

fn limits(max_gap: u16, max_registers: u16) -> PlanLimits {
    PlanLimits {
        max_gap,
        max_registers,
        max_bits: 2000,
    }
}

#[test]
fn default_limits() {
    assert_eq!(
        PlanLimits::default(),
        PlanLimits {
            max_gap: 10,
            max_registers: 125,
            max_bits: 2000
        }
    );
}

#[test]
fn gap_of_exactly_max_gap_merges() {
    // F32 at 0..=1, next point at 12: registers 2..=11 unused = gap 10.
    let pts = [
        pt(RegisterKind::Input, 0, DataType::F32),
        pt(RegisterKind::Input, 12, DataType::F32),
    ];
    let reads = plan(&pts, limits(10, 125));
    assert_eq!(
        reads,
        vec![PlannedRead {
            kind: RegisterKind::Input,
            start: 0,
            count: 14,
            points: vec![slot(0, 0), slot(1, 12)],
        }]
    );
}

#[test]
fn gap_of_max_gap_plus_one_splits() {
    // Next point at 13: registers 2..=12 unused = gap 11.
    let pts = [
        pt(RegisterKind::Input, 0, DataType::F32),
        pt(RegisterKind::Input, 13, DataType::F32),
    ];
    let reads = plan(&pts, limits(10, 125));
    assert_eq!(
        reads,
        vec![
            PlannedRead {
                kind: RegisterKind::Input,
                start: 0,
                count: 2,
                points: vec![slot(0, 0)],
            },
            PlannedRead {
                kind: RegisterKind::Input,
                start: 13,
                count: 2,
                points: vec![slot(1, 0)],
            },
        ]
    );
}

#[test]
fn zero_gap_merges_only_adjacent_points() {
    let pts = [
        pt(RegisterKind::Holding, 0, DataType::U16),
        pt(RegisterKind::Holding, 1, DataType::U16),
        pt(RegisterKind::Holding, 3, DataType::U16),
    ];
    assert_eq!(
        ranges(&plan(&pts, limits(0, 125))),
        vec![(RegisterKind::Holding, 0, 2), (RegisterKind::Holding, 3, 1)]
    );
}

#[test]
fn seventy_f32_points_split_at_a_point_boundary() {
    // 70 × 2 = 140 registers. 62 points fill 124 registers; a 63rd would make
    // 126 > 125, so the first read stops at 124 and never cuts a float.
    let pts: Vec<PointDef> = (0..70)
        .map(|i| pt(RegisterKind::Input, i * 2, DataType::F32))
        .collect();
    let reads = plan(&pts, PlanLimits::default());
    assert_eq!(
        ranges(&reads),
        vec![
            (RegisterKind::Input, 0, 124),
            (RegisterKind::Input, 124, 16)
        ]
    );
    assert_eq!(reads[0].points.len(), 62);
    assert_eq!(reads[1].points.len(), 8);
    assert_eq!(reads[0].points[61], slot(61, 122));
    assert_eq!(reads[1].points[0], slot(62, 0));
    assert_eq!(reads[1].points[7], slot(69, 14));
}

#[test]
fn exactly_125_registers_fit_one_read() {
    let pts: Vec<PointDef> = (0..125)
        .map(|i| pt(RegisterKind::Holding, i, DataType::U16))
        .collect();
    assert_eq!(
        ranges(&plan(&pts, PlanLimits::default())),
        vec![(RegisterKind::Holding, 0, 125)]
    );
    let pts: Vec<PointDef> = (0..126)
        .map(|i| pt(RegisterKind::Holding, i, DataType::U16))
        .collect();
    assert_eq!(
        ranges(&plan(&pts, PlanLimits::default())),
        vec![
            (RegisterKind::Holding, 0, 125),
            (RegisterKind::Holding, 125, 1)
        ]
    );
}

#[test]
fn limit_above_protocol_maximum_is_clamped_to_125() {
    let pts: Vec<PointDef> = (0..70)
        .map(|i| pt(RegisterKind::Input, i * 2, DataType::F32))
        .collect();
    assert_eq!(
        ranges(&plan(&pts, limits(10, 1000))),
        vec![
            (RegisterKind::Input, 0, 124),
            (RegisterKind::Input, 124, 16)
        ]
    );
}

#[test]
fn limit_below_point_width_gives_one_read_per_point() {
    // max_registers 3 < 4 (an F64): every point gets its own read, uncut.
    let pts = [
        pt(RegisterKind::Holding, 0, DataType::F64),
        pt(RegisterKind::Holding, 4, DataType::F64),
        pt(RegisterKind::Holding, 8, DataType::U16),
        pt(RegisterKind::Holding, 9, DataType::U16),
    ];
    let reads = plan(&pts, limits(10, 3));
    assert_eq!(
        ranges(&reads),
        vec![
            (RegisterKind::Holding, 0, 4),
            (RegisterKind::Holding, 4, 4),
            (RegisterKind::Holding, 8, 2),
        ]
    );
    // A limit of 0 is clamped to 1.
    let reads = plan(&pts, limits(10, 0));
    assert_eq!(
        ranges(&reads),
        vec![
            (RegisterKind::Holding, 0, 4),
            (RegisterKind::Holding, 4, 4),
            (RegisterKind::Holding, 8, 1),
            (RegisterKind::Holding, 9, 1),
        ]
    );
}

#[test]
fn different_kinds_never_merge_and_come_out_in_kind_order() {
    // Same addresses in all four tables; given in reverse kind order.
    let pts = [
        pt(RegisterKind::Holding, 0, DataType::U16),
        pt(RegisterKind::Input, 0, DataType::U16),
        pt(RegisterKind::Discrete, 0, DataType::Bool),
        pt(RegisterKind::Coil, 0, DataType::Bool),
        pt(RegisterKind::Holding, 1, DataType::U16),
        pt(RegisterKind::Coil, 1, DataType::Bool),
    ];
    let reads = plan(&pts, PlanLimits::default());
    assert_eq!(
        reads,
        vec![
            PlannedRead {
                kind: RegisterKind::Coil,
                start: 0,
                count: 2,
                points: vec![slot(3, 0), slot(5, 1)],
            },
            PlannedRead {
                kind: RegisterKind::Discrete,
                start: 0,
                count: 1,
                points: vec![slot(2, 0)],
            },
            PlannedRead {
                kind: RegisterKind::Input,
                start: 0,
                count: 1,
                points: vec![slot(1, 0)],
            },
            PlannedRead {
                kind: RegisterKind::Holding,
                start: 0,
                count: 2,
                points: vec![slot(0, 0), slot(4, 1)],
            },
        ]
    );
}

#[test]
fn bit_tables_use_the_bit_limit() {
    let pts: Vec<PointDef> = (0..2001)
        .map(|i| pt(RegisterKind::Coil, i, DataType::Bool))
        .collect();
    assert_eq!(
        ranges(&plan(&pts, PlanLimits::default())),
        vec![(RegisterKind::Coil, 0, 2000), (RegisterKind::Coil, 2000, 1)]
    );
    let small = PlanLimits {
        max_gap: 10,
        max_registers: 125,
        max_bits: 16,
    };
    assert_eq!(
        ranges(&plan(&pts[..40], small)),
        vec![
            (RegisterKind::Coil, 0, 16),
            (RegisterKind::Coil, 16, 16),
            (RegisterKind::Coil, 32, 8),
        ]
    );
}

#[test]
fn overlapping_points_share_a_read() {
    // A U32 at 10..=11, a U16 over its low word at 11, and a second field
    // decoding the same U32 (same registers, another scale).
    let pts = [
        pt(RegisterKind::Holding, 10, DataType::U32),
        pt(RegisterKind::Holding, 11, DataType::U16),
        pt(RegisterKind::Holding, 10, DataType::U32),
        pt(RegisterKind::Holding, 8, DataType::F64),
    ];
    let reads = plan(&pts, PlanLimits::default());
    assert_eq!(
        reads,
        vec![PlannedRead {
            kind: RegisterKind::Holding,
            start: 8,
            count: 4,
            points: vec![slot(3, 0), slot(0, 2), slot(2, 2), slot(1, 3)],
        }]
    );
}

#[test]
fn overlap_does_not_break_the_size_limit() {
    // 0..=123 then an F64 at 122..=125: merged it would span 126 registers.
    let mut pts: Vec<PointDef> = (0..62)
        .map(|i| pt(RegisterKind::Input, i * 2, DataType::F32))
        .collect();
    pts.push(pt(RegisterKind::Input, 122, DataType::F64));
    assert_eq!(
        ranges(&plan(&pts, PlanLimits::default())),
        vec![(RegisterKind::Input, 0, 124), (RegisterKind::Input, 122, 4)]
    );
}

#[test]
fn sdm630_like_profile_is_three_reads() {
    // SDM630 input registers: 0x00..0x22 by twos (ends at 0x23), then 0x30:
    // 0x24..=0x2F is a gap of 12 > 10, so a second read starts there and runs
    // to 0x57 (gaps of 2 and 6 inside); total kWh at 0x156 is far away.
    let mut addrs: Vec<u16> = (0x00..=0x22).step_by(2).collect();
    addrs.extend([
        0x30, 0x34, 0x38, 0x3C, 0x3E, 0x46, 0x48, 0x4A, 0x4C, 0x4E, 0x54, 0x56, 0x156,
    ]);
    let pts: Vec<PointDef> = addrs
        .iter()
        .map(|&a| pt(RegisterKind::Input, a, DataType::F32))
        .collect();
    let reads = plan(&pts, PlanLimits::default());
    assert_eq!(
        ranges(&reads),
        vec![
            (RegisterKind::Input, 0, 0x24),
            (RegisterKind::Input, 0x30, 0x28),
            (RegisterKind::Input, 0x156, 2),
        ]
    );
    assert_eq!(reads[0].points.len(), 18);
    assert_eq!(reads[1].points.len(), 12);
}

#[test]
fn split_gives_one_read_per_point() {
    let pts = [
        pt(RegisterKind::Input, 4, DataType::F32),
        pt(RegisterKind::Input, 0, DataType::F32),
        pt(RegisterKind::Input, 9, DataType::U16),
    ];
    let reads = plan(&pts, PlanLimits::default());
    assert_eq!(reads.len(), 1);
    assert_eq!(
        split(&reads[0], &pts),
        vec![
            PlannedRead {
                kind: RegisterKind::Input,
                start: 0,
                count: 2,
                points: vec![slot(1, 0)],
            },
            PlannedRead {
                kind: RegisterKind::Input,
                start: 4,
                count: 2,
                points: vec![slot(0, 0)],
            },
            PlannedRead {
                kind: RegisterKind::Input,
                start: 9,
                count: 1,
                points: vec![slot(2, 0)],
            },
        ]
    );
}

#[test]
fn split_keeps_points_over_identical_registers_together() {
    let pts = [
        pt(RegisterKind::Holding, 10, DataType::U32),
        pt(RegisterKind::Holding, 11, DataType::U16),
        pt(RegisterKind::Holding, 10, DataType::U32),
    ];
    let reads = plan(&pts, PlanLimits::default());
    assert_eq!(
        split(&reads[0], &pts),
        vec![
            PlannedRead {
                kind: RegisterKind::Holding,
                start: 10,
                count: 2,
                points: vec![slot(0, 0), slot(2, 0)],
            },
            PlannedRead {
                kind: RegisterKind::Holding,
                start: 11,
                count: 1,
                points: vec![slot(1, 0)],
            },
        ]
    );
}

#[test]
fn plan_is_deterministic() {
    let pts: Vec<PointDef> = [7u16, 3, 90, 1, 3, 44]
        .iter()
        .map(|&a| pt(RegisterKind::Holding, a, DataType::U16))
        .collect();
    assert_eq!(
        plan(&pts, PlanLimits::default()),
        plan(&pts, PlanLimits::default())
    );
}
