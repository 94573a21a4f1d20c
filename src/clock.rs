//! One clock for "now" in Unix milliseconds: poll slots, MQTT receipt times,
//! the status board, the reload's quiet moment and the simulator all read
//! [`now_ms`], so one switch moves all of them in a test.
//!
//! By default [`now_ms`] is the system clock. A test can install a
//! [`Clock::starting_at`] a chosen wall time on its thread
//! ([`Clock::use_on_this_thread`]): that clock advances with
//! [`tokio::time::Instant`], so `tokio::time::pause()` and `advance()` move
//! the wall clock and tokio's timers together, exactly. The override is per
//! thread: it covers every task of a current-thread runtime (what
//! `#[tokio::test]` and `start_paused` use), not the workers of a
//! multi-thread runtime nor `spawn_blocking` threads.
//!
//! Reading the clock costs one thread-local load: no lock, no allocation.

use std::cell::Cell;
use std::marker::PhantomData;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// A source of wall-clock time in Unix milliseconds: the system clock, or a
/// test clock anchored at a wall time that advances with tokio's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Clock {
    /// `None`: the system clock.
    anchor: Option<Anchor>,
}

/// The wall time a test clock showed at one tokio instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Anchor {
    wall_ms: i64,
    at: Instant,
}

thread_local! {
    /// The clock [`now_ms`] reads on this thread.
    static CURRENT: Cell<Clock> = const { Cell::new(Clock::system()) };
}

impl Clock {
    /// The system clock (`SystemTime`).
    #[must_use]
    pub const fn system() -> Clock {
        Clock { anchor: None }
    }

    /// A clock that shows `wall_ms` now and advances with
    /// [`tokio::time::Instant`] (paused time included).
    #[must_use]
    pub fn starting_at(wall_ms: i64) -> Clock {
        Clock {
            anchor: Some(Anchor {
                wall_ms,
                at: Instant::now(),
            }),
        }
    }

    /// Unix milliseconds now, by this clock.
    #[must_use]
    pub fn now_ms(self) -> i64 {
        match self.anchor {
            None => system_ms(),
            Some(a) => {
                let elapsed = i64::try_from(a.at.elapsed().as_millis()).unwrap_or(i64::MAX);
                a.wall_ms.saturating_add(elapsed)
            }
        }
    }

    /// Makes this the clock [`now_ms`] reads on the current thread until the
    /// returned guard is dropped (the previous one is then restored).
    pub fn use_on_this_thread(self) -> ThreadClock {
        ThreadClock {
            previous: CURRENT.replace(self),
            not_send: PhantomData,
        }
    }
}

/// Keeps a clock installed on the current thread; dropping it restores the
/// previous one. Not `Send`: it must be dropped on the thread it changed.
#[derive(Debug)]
#[must_use = "the clock is uninstalled when the guard is dropped"]
pub struct ThreadClock {
    previous: Clock,
    not_send: PhantomData<*const ()>,
}

impl Drop for ThreadClock {
    fn drop(&mut self) {
        CURRENT.set(self.previous);
    }
}

/// Unix milliseconds now, by the current thread's clock (the system clock
/// unless a test installed another).
#[must_use]
pub fn now_ms() -> i64 {
    CURRENT.get().now_ms()
}

/// The system clock in Unix milliseconds; negative before 1970.
fn system_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn system_clock_is_unix_milliseconds() {
        let before = jiff::Timestamp::now().as_millisecond();
        let now = now_ms();
        let after = jiff::Timestamp::now().as_millisecond();
        assert!(
            before <= now && now <= after,
            "{before} <= {now} <= {after}"
        );
        assert_eq!(Clock::default(), Clock::system());
    }

    #[tokio::test(start_paused = true)]
    async fn test_clock_advances_exactly_with_tokio_time() {
        let start = 1_700_000_000_123;
        let clock = Clock::starting_at(start);
        assert_eq!(clock.now_ms(), start);
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(clock.now_ms(), start + 1_500);
        // A sleep under paused time jumps straight to its end.
        tokio::time::sleep(Duration::from_hours(1)).await;
        assert_eq!(clock.now_ms(), start + 1_500 + 3_600_000);
        // Sub-millisecond steps are counted once they add up to one.
        tokio::time::advance(Duration::from_micros(600)).await;
        assert_eq!(clock.now_ms(), start + 3_601_500);
        tokio::time::advance(Duration::from_micros(600)).await;
        assert_eq!(clock.now_ms(), start + 3_601_501);
    }

    #[tokio::test(start_paused = true)]
    async fn installed_clock_is_what_now_ms_reads_until_dropped() {
        let start = 86_400_000;
        {
            let _clock = Clock::starting_at(start).use_on_this_thread();
            assert_eq!(now_ms(), start);
            // Tasks of this current-thread runtime read it too.
            let in_task = tokio::spawn(async {
                tokio::time::sleep(Duration::from_mins(1)).await;
                now_ms()
            })
            .await
            .expect("task");
            assert_eq!(in_task, start + 60_000);
            {
                let _inner = Clock::starting_at(0).use_on_this_thread();
                assert_eq!(now_ms(), 0);
            }
            assert_eq!(now_ms(), start + 60_000, "the outer clock is back");
        }
        assert!(now_ms() > 1_600_000_000_000, "the system clock is back");
    }
}
