//! The request planner: merges one meter's points into as few Modbus reads as possible.
//!
//! Every request costs a round trip (tens of milliseconds on a serial gateway),
//! so reading 20 float registers one by one is 20 times slower than one block
//! read. The planner groups points by register table (each table is its own
//! function code), sorts them by address and merges neighbours while the
//! unused registers between them stay within [`PlanLimits::max_gap`] and the
//! read stays within the protocol's size limit. A read never cuts a point.
//!
//! Some devices reject reads that span registers they do not implement; the
//! poller then calls [`split`] and learns, point by point, what the device
//! accepts. Planning runs once at startup, so it allocates freely.

use crate::profiles::{PointDef, RegisterKind};

/// Largest register count of one read (FC 03/04), from the Modbus spec.
pub const MAX_REGISTERS_PER_READ: u16 = 125;
/// Largest bit count of one read (FC 01/02), from the Modbus spec.
pub const MAX_BITS_PER_READ: u16 = 2000;

/// How far the planner may merge points into one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    /// Largest number of unused registers (or bits) a read may span between two points.
    pub max_gap: u16,
    /// Largest register count of one read; clamped to `1..=125`.
    pub max_registers: u16,
    /// Largest bit count of one coil or discrete-input read; clamped to `1..=2000`.
    pub max_bits: u16,
}

impl Default for PlanLimits {
    /// Gap 10, and the protocol maxima: 125 registers, 2000 bits.
    fn default() -> Self {
        PlanLimits {
            max_gap: 10,
            max_registers: MAX_REGISTERS_PER_READ,
            max_bits: MAX_BITS_PER_READ,
        }
    }
}

impl PlanLimits {
    /// The size limit for `kind`, clamped to the protocol maximum and to at least 1.
    #[must_use]
    pub fn size_limit(&self, kind: RegisterKind) -> u16 {
        if kind.is_bit() {
            self.max_bits.clamp(1, MAX_BITS_PER_READ)
        } else {
            self.max_registers.clamp(1, MAX_REGISTERS_PER_READ)
        }
    }
}

/// One Modbus read request and the points its answer carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRead {
    /// Register table, hence function code.
    pub kind: RegisterKind,
    /// First address read (0-based protocol address).
    pub start: u16,
    /// Registers (or bits) read. Exceeds the size limit only when a single
    /// point is wider than the limit: a point is never cut.
    pub count: u16,
    /// The points in the answer, ordered by address then point index.
    pub points: Vec<PointSlot>,
}

/// Where one point sits in a read's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointSlot {
    /// Index into the profile's points.
    pub point: u16,
    /// Registers (or bits) from the read's `start` to the point's first one.
    pub offset: u16,
}

/// The read being grown while planning; `end` is exclusive and `u32` so that
/// a point ending at address 65535 cannot overflow.
struct Open {
    kind: RegisterKind,
    start: u32,
    end: u32,
    points: Vec<PointSlot>,
}

impl Open {
    fn new(kind: RegisterKind, index: u16, p: &PointDef) -> Self {
        Open {
            kind,
            start: u32::from(p.address),
            end: p.end_address() + 1,
            points: vec![PointSlot {
                point: index,
                offset: 0,
            }],
        }
    }

    fn close(self) -> PlannedRead {
        PlannedRead {
            kind: self.kind,
            start: self.start as u16,
            count: (self.end - self.start) as u16,
            points: self.points,
        }
    }
}

/// Plans the reads for `points` (a profile's points, indexed as given).
///
/// Reads come out ordered by register kind (coil, discrete, input, holding)
/// then start address; the same input always gives the same plan.
#[must_use]
pub fn plan(points: &[PointDef], limits: PlanLimits) -> Vec<PlannedRead> {
    let mut order: Vec<u16> = (0..points.len() as u16).collect();
    // The index breaks ties so that overlapping points keep a stable order.
    order.sort_by_key(|&i| {
        let p = &points[usize::from(i)];
        (p.register, p.address, i)
    });

    let mut reads = Vec::new();
    let mut open: Option<Open> = None;
    for i in order {
        let p = &points[usize::from(i)];
        let (start, end) = (u32::from(p.address), p.end_address() + 1);
        if let Some(cur) = open.as_mut() {
            // Overlapping or adjacent points leave no gap.
            let gap = start.saturating_sub(cur.end);
            let merged_count = cur.end.max(end) - cur.start;
            if cur.kind == p.register
                && gap <= u32::from(limits.max_gap)
                && merged_count <= u32::from(limits.size_limit(p.register))
            {
                cur.end = cur.end.max(end);
                cur.points.push(PointSlot {
                    point: i,
                    offset: (start - cur.start) as u16,
                });
                continue;
            }
        }
        if let Some(done) = open.replace(Open::new(p.register, i, p)) {
            reads.push(done.close());
        }
    }
    if let Some(done) = open {
        reads.push(done.close());
    }
    reads
}

/// Splits a read into one read per distinct register range of its points.
///
/// Used after a device answers a merged read with an exception, to learn
/// which points it accepts. Points over exactly the same registers (two
/// fields decoded from one value) stay together: the device's answer depends
/// only on the range. Output is ordered by start address.
#[must_use]
pub fn split(read: &PlannedRead, points: &[PointDef]) -> Vec<PlannedRead> {
    let mut out: Vec<PlannedRead> = Vec::with_capacity(read.points.len());
    for slot in &read.points {
        let p = &points[usize::from(slot.point)];
        let (start, count) = (p.address, p.width());
        let single = PointSlot {
            point: slot.point,
            offset: 0,
        };
        match out
            .iter_mut()
            .find(|r| r.start == start && r.count == count)
        {
            Some(same) => same.points.push(single),
            None => out.push(PlannedRead {
                kind: read.kind,
                start,
                count,
                points: vec![single],
            }),
        }
    }
    // `read.points` is ordered by address, but keep the guarantee explicit.
    out.sort_by_key(|r| (r.start, r.count));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::DataType;

    fn pt(register: RegisterKind, address: u16, data_type: DataType) -> PointDef {
        PointDef::new(&format!("p{address}"), register, address, data_type)
    }

    fn slot(point: u16, offset: u16) -> PointSlot {
        PointSlot { point, offset }
    }

    #[test]
    fn empty_profile_plans_nothing() {
        assert!(plan(&[], PlanLimits::default()).is_empty());
    }

    #[test]
    fn contiguous_points_merge_into_one_read() {
        let pts = [
            pt(RegisterKind::Input, 0, DataType::F32),
            pt(RegisterKind::Input, 2, DataType::F32),
            pt(RegisterKind::Input, 4, DataType::U16),
        ];
        let reads = plan(&pts, PlanLimits::default());
        assert_eq!(
            reads,
            vec![PlannedRead {
                kind: RegisterKind::Input,
                start: 0,
                count: 5,
                points: vec![slot(0, 0), slot(1, 2), slot(2, 4)],
            }]
        );
    }

    #[test]
    fn unsorted_input_is_sorted_by_address() {
        let pts = [
            pt(RegisterKind::Holding, 10, DataType::U16),
            pt(RegisterKind::Holding, 8, DataType::U32),
        ];
        let reads = plan(&pts, PlanLimits::default());
        assert_eq!(reads.len(), 1);
        assert_eq!((reads[0].start, reads[0].count), (8, 3));
        assert_eq!(reads[0].points, vec![slot(1, 0), slot(0, 2)]);
    }

    #[test]
    fn limits_are_clamped() {
        let l = PlanLimits {
            max_gap: 0,
            max_registers: 0,
            max_bits: 60_000,
        };
        assert_eq!(l.size_limit(RegisterKind::Holding), 1);
        assert_eq!(l.size_limit(RegisterKind::Coil), 2000);
        let l = PlanLimits {
            max_gap: 0,
            max_registers: 500,
            max_bits: 0,
        };
        assert_eq!(l.size_limit(RegisterKind::Input), 125);
        assert_eq!(l.size_limit(RegisterKind::Discrete), 1);
    }

    #[test]
    fn point_at_top_of_address_space() {
        let pts = [
            pt(RegisterKind::Holding, 65_532, DataType::F64),
            pt(RegisterKind::Holding, 65_530, DataType::U16),
        ];
        let reads = plan(&pts, PlanLimits::default());
        assert_eq!(reads.len(), 1);
        assert_eq!((reads[0].start, reads[0].count), (65_530, 6));
    }
}
