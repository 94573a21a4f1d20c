//! The shutdown: one deadline, shared out from here to every task that must
//! finish within it, all counted from one instant; and the SIGINT/SIGTERM
//! handler that starts it.
//!
//! `gateway.shutdown_timeout_secs` (T) promises that the gateway stops
//! within T of the cancellation. The tasks' shares depend on each other, so
//! they are computed in one place ([`Deadline`]): above all, a broker client
//! must stay connected as long as the encoder may still spool a message it
//! received. Otherwise the message is spooled but never acknowledged, and
//! the broker delivers it again after the restart.
//!
//! ```text
//! t0: the cancellation      m: ack margin, min(T/10, 1 s)      e: exit margin, min(T/10, 500 ms)
//!
//! t0            t0+T/2     +m        +2m                         t0+T−e     t0+T
//! ├ sources stop: pollers end the poll in progress, broker clients stop forwarding
//! ├─────────────┤ the appender waits for spool room, then gives up what is in memory
//! ├────────────────────────┤ broker clients drain acks (until the encoder has answered all)
//!                          ├─────────┤ broker clients send DISCONNECT
//!     input done ├─ uploader: delivers until the spool is empty, 3T/4 at most ─┤
//!                                            backstop: the uploader is aborted ┤─e─┤ exit
//! ```
//!
//! The front (sources, encoder, spool sync) usually takes milliseconds;
//! "input done" is its end. It is long only when the spool is full or the
//! disk fails, and then ends by T/2 + 2m at the latest (the broker clients
//! see the cancellation as the appender does, within microseconds; `m`
//! covers that and the acks of the last answers). The uploader delivers all
//! along; after the input is done it stops when the spool is empty or its
//! grace ends, and the backstop cuts a write still in flight at T − e.
//! What is not delivered stays in the spool for the next start.
//!
//! Every share is counted from the same instant, [`Shutdown::began`]: the
//! first time any task looks after the cancellation.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The default of `gateway.shutdown_timeout_secs`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the shutdown deadline is shared out: every task's share, as a time
/// after the cancellation (see the module doc for the timeline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// `gateway.shutdown_timeout`.
    timeout: Duration,
}

impl Default for Deadline {
    /// The deadline of [`DEFAULT_TIMEOUT`].
    fn default() -> Deadline {
        Deadline::new(DEFAULT_TIMEOUT)
    }
}

impl Deadline {
    /// The shares of `timeout`.
    #[must_use]
    pub const fn new(timeout: Duration) -> Deadline {
        Deadline { timeout }
    }

    /// The whole deadline.
    #[must_use]
    pub const fn timeout(self) -> Duration {
        self.timeout
    }

    /// How long after the cancellation the appender waits for a full (or
    /// failing) spool before giving up the readings still in memory: half
    /// the deadline, so a dead output cannot hold the gateway past it.
    #[must_use]
    pub fn spool_give_up(self) -> Duration {
        self.timeout / 2
    }

    /// Time for the last answers of the encoder to be acknowledged to the
    /// broker once the appender gave up, and for a DISCONNECT to go out:
    /// a tenth of the deadline, at most 1 s.
    #[must_use]
    pub fn ack_margin(self) -> Duration {
        (self.timeout / 10).min(Duration::from_secs(1))
    }

    /// How long after the cancellation a broker client keeps its connection
    /// for the acks of what the encoder still spools: as long as the
    /// appender may spool, plus [`Deadline::ack_margin`]. The client stops
    /// earlier once every message it forwarded is answered.
    #[must_use]
    pub fn mqtt_drain(self) -> Duration {
        self.spool_give_up() + self.ack_margin()
    }

    /// How long a broker client polls its connection after the drain so the
    /// last acks and the DISCONNECT go out.
    #[must_use]
    pub fn mqtt_disconnect(self) -> Duration {
        self.ack_margin()
    }

    /// The uploader's grace once the input is done (the pipeline appended
    /// its last batch): three quarters of the deadline. The front usually
    /// takes milliseconds; the rest covers a request still in flight when
    /// the grace ends.
    #[must_use]
    pub fn uploader_grace(self) -> Duration {
        self.timeout * 3 / 4
    }

    /// Kept free at the end of the deadline for logging and process exit.
    #[must_use]
    pub fn exit_margin(self) -> Duration {
        (self.timeout / 10).min(Duration::from_millis(500))
    }

    /// When, after the cancellation, a task still running is abandoned (the
    /// uploader aborted, the API left): the deadline less the exit margin.
    #[must_use]
    pub fn backstop(self) -> Duration {
        self.timeout.saturating_sub(self.exit_margin())
    }
}

/// The process shutdown: the cancellation every task watches, the
/// [`Deadline`] and the instant it is counted from. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Shutdown {
    token: CancellationToken,
    deadline: Deadline,
    /// Set by the first look after the cancellation.
    began: Arc<OnceLock<Instant>>,
}

impl Shutdown {
    /// The shutdown that `token`'s cancellation starts, within `deadline`.
    #[must_use]
    pub fn new(token: CancellationToken, deadline: Deadline) -> Shutdown {
        Shutdown {
            token,
            deadline,
            began: Arc::default(),
        }
    }

    /// The cancellation: the sources' share is to stop at it (children of
    /// it stop one generation at a reload).
    #[must_use]
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// How the deadline is shared out.
    #[must_use]
    pub fn deadline(&self) -> Deadline {
        self.deadline
    }

    /// When the shutdown began; `None` before the cancellation. The first
    /// call after it fixes the instant (tasks look as soon as they wake, so
    /// it is the cancellation give or take microseconds): every share is
    /// then counted from the same one.
    #[must_use]
    pub fn began(&self) -> Option<Instant> {
        if let Some(&t) = self.began.get() {
            return Some(t);
        }
        self.token
            .is_cancelled()
            .then(|| *self.began.get_or_init(Instant::now))
    }

    /// Waits for the cancellation; returns when the shutdown began.
    pub async fn cancelled(&self) -> Instant {
        self.token.cancelled().await;
        *self.began.get_or_init(Instant::now)
    }

    /// When the appender gives up on a full spool; `None` before the
    /// cancellation (it never does).
    #[must_use]
    pub fn spool_give_up_at(&self) -> Option<Instant> {
        self.began().map(|t| t + self.deadline.spool_give_up())
    }

    /// When what still runs is abandoned; `None` before the cancellation.
    #[must_use]
    pub fn backstop_at(&self) -> Option<Instant> {
        self.began().map(|t| t + self.deadline.backstop())
    }
}

/// Registers the SIGINT and SIGTERM handlers now and returns a future that
/// resolves on either. Registering first thing, before the configuration is
/// read, means a signal that arrives during start-up stops the gateway in
/// order instead of killing it.
pub fn termination() -> impl Future<Output = ()> + Send {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut i), Ok(mut t)) => {
                tokio::select! {
                    _ = i.recv() => {}
                    _ = t.recv() => {}
                }
            }
            (Ok(mut only), Err(e)) | (Err(e), Ok(mut only)) => {
                tracing::error!(error = %e, "cannot listen for one of SIGINT/SIGTERM; the other still stops the gateway");
                only.recv().await;
            }
            (Err(e), Err(_)) => {
                tracing::error!(error = %e, "cannot listen for SIGINT or SIGTERM; stop the gateway with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn shares_of_the_default_deadline() {
        let d = Deadline::default();
        assert_eq!(d.timeout(), secs(10.0));
        assert_eq!(d.spool_give_up(), secs(5.0));
        assert_eq!(d.mqtt_drain(), secs(6.0));
        assert_eq!(d.mqtt_disconnect(), secs(1.0));
        assert_eq!(d.uploader_grace(), secs(7.5));
        assert_eq!(d.backstop(), secs(9.5));
    }

    #[test]
    fn a_long_deadline_keeps_the_broker_clients_as_long_as_the_appender() {
        let d = Deadline::new(Duration::from_secs(30));
        assert_eq!(d.spool_give_up(), secs(15.0));
        assert_eq!(d.mqtt_drain(), secs(16.0));
        assert_eq!(d.backstop(), secs(29.5));
    }

    #[test]
    fn shares_fit_together_for_every_allowed_deadline() {
        // shutdown_timeout_secs is 1..=300.
        for t in 1..=300 {
            let d = Deadline::new(Duration::from_secs(t));
            assert!(
                d.mqtt_drain() > d.spool_give_up(),
                "{t} s: drain past the give-up"
            );
            assert!(
                d.mqtt_drain() + d.mqtt_disconnect() < d.backstop(),
                "{t} s: clients done before the backstop"
            );
            assert!(d.uploader_grace() < d.backstop(), "{t} s");
            assert_eq!(d.backstop() + d.exit_margin(), d.timeout(), "{t} s");
            assert!(d.exit_margin() > Duration::ZERO, "{t} s");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn shares_count_from_one_instant() {
        let token = CancellationToken::new();
        let shutdown = Shutdown::new(token.clone(), Deadline::new(Duration::from_secs(30)));
        assert_eq!(shutdown.began(), None);
        assert_eq!(shutdown.spool_give_up_at(), None);
        tokio::time::advance(secs(1.0)).await;
        token.cancel();
        let t0 = shutdown.cancelled().await;
        assert_eq!(t0, Instant::now());
        // A task that looks later still counts from the same instant.
        tokio::time::advance(secs(3.0)).await;
        let clone = shutdown.clone();
        assert_eq!(clone.began(), Some(t0));
        assert_eq!(clone.spool_give_up_at(), Some(t0 + secs(15.0)));
        assert_eq!(clone.backstop_at(), Some(t0 + secs(29.5)));
    }
}
