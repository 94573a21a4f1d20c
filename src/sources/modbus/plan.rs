//! Request planner. (temporary stub: one read per point; replaced by the codec branch)
#![allow(missing_docs)]
use crate::profiles::{PointDef, RegisterKind};

#[derive(Debug, Clone, Copy)]
pub struct PlanLimits { pub max_gap: u16, pub max_registers: u16, pub max_bits: u16 }
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRead { pub kind: RegisterKind, pub start: u16, pub count: u16, pub points: Vec<PointSlot> }
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointSlot { pub point: u16, pub offset: u16 }
pub fn plan(points: &[PointDef], _limits: PlanLimits) -> Vec<PlannedRead> {
    points.iter().enumerate().map(|(i, p)| PlannedRead { kind: p.register, start: p.address, count: p.width(), points: vec![PointSlot { point: i as u16, offset: 0 }] }).collect()
}
pub fn split(read: &PlannedRead, points: &[PointDef]) -> Vec<PlannedRead> {
    read.points.iter().map(|s| { let p = &points[s.point as usize]; PlannedRead { kind: p.register, start: p.address, count: p.width(), points: vec![PointSlot { point: s.point, offset: 0 }] } }).collect()
}
