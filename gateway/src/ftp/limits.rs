//! Connection limits and the failed-login lockout. Pure bookkeeping: callers pass the time in,
//! so the rules are table-tested without sleeping.
//!
//! Every rule counts a client under [`address_key`]: its IPv4 address, or its IPv6 /64 (one
//! host commonly holds a whole /64, so counting single IPv6 addresses would count nothing).
//!
//! - Sessions: at most `max_sessions` in all and `max_per_ip` from one address, of which at
//!   most [`SessionLimits::max_unauthenticated_per_ip`] (half, at least one) not logged in
//!   yet; a connection over any of them is told `421` and closed.
//! - Lockout: after `max_failures` failed logins from one address within `window`, further
//!   logins from it are refused without asking the store, until `window` has passed since the
//!   last failure. A successful login clears only the failures of the same user name from that
//!   address: one's own account cannot wipe the guesses at another's. An attempt holds a place
//!   in the count from its start ([`LoginLockout::begin`]) until it is settled
//!   ([`LoginLockout::finish`]), so parallel attempts cannot all pass the check before the first
//!   failure is recorded: attempts beyond the places left wait for earlier ones to settle.
//! - [`LogThrottle`]: refusals are logged once per address and period, so a client that hammers
//!   the server does not write a line per try.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The address a client is counted under: IPv4 (an IPv4-mapped IPv6 address as IPv4) as it
/// is, IPv6 as its /64 network. Pure.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let net = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(net.into())
        }
        v4 => v4,
    }
}

/// Session limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Sessions in all.
    pub max_sessions: usize,
    /// Sessions from one client address.
    pub max_per_ip: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_sessions: 64,
            max_per_ip: 16,
        }
    }
}

impl SessionLimits {
    /// Sessions from one address that have not logged in yet: half of `max_per_ip` (at least
    /// one), so connections that never log in cannot take all of an address's places.
    pub fn max_unauthenticated_per_ip(self) -> usize {
        (self.max_per_ip / 2).max(1)
    }
}

/// Sessions per address: all of them, and those not logged in yet.
#[derive(Debug, Default, Clone, Copy)]
struct Count {
    all: usize,
    unauthenticated: usize,
}

/// Counts live sessions per address (see [`address_key`]).
#[derive(Debug, Default)]
pub struct SessionCounter {
    per_ip: Mutex<HashMap<IpAddr, Count>>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The gateway is full.
    TooManySessions,
    /// This address has too many sessions.
    TooManyFromAddress,
    /// This address has too many sessions that have not logged in.
    TooManyUnauthenticated,
    /// This address is locked out after failed logins, for this long still.
    LockedOut(Duration),
}

impl Refusal {
    /// The `421` reply line.
    pub fn reply(self) -> String {
        match self {
            Refusal::TooManySessions => {
                "421 Too many sessions on this server, try again later\r\n".into()
            }
            Refusal::TooManyFromAddress => {
                "421 Too many sessions from your address, close some and try again\r\n".into()
            }
            Refusal::TooManyUnauthenticated => {
                "421 Too many connections from your address that have not logged in, log in or close some\r\n"
                    .into()
            }
            Refusal::LockedOut(wait) => format!(
                "421 Too many failed logins from your address; try again in {} s\r\n",
                wait.as_secs().max(1)
            ),
        }
    }
}

impl SessionCounter {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Count>> {
        crate::sync::lock(&self.per_ip)
    }

    /// Admits a session from `ip`, not logged in yet, or says why not. The session holds its
    /// places until the [`Admission`] is dropped, however its task ends.
    pub fn admit(&self, ip: IpAddr, limits: SessionLimits) -> Result<Admission<'_>, Refusal> {
        self.take(ip, limits)?;
        Ok(Admission {
            counter: self,
            ip,
            logged_in: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Takes a place for a session from `ip`, not logged in yet, or says why not.
    fn take(&self, ip: IpAddr, limits: SessionLimits) -> Result<(), Refusal> {
        let mut map = self.map();
        let total: usize = map.values().map(|c| c.all).sum();
        if total >= limits.max_sessions {
            return Err(Refusal::TooManySessions);
        }
        let n = map.entry(address_key(ip)).or_default();
        if n.all >= limits.max_per_ip {
            return Err(Refusal::TooManyFromAddress);
        }
        if n.unauthenticated >= limits.max_unauthenticated_per_ip() {
            return Err(Refusal::TooManyUnauthenticated);
        }
        n.all += 1;
        n.unauthenticated += 1;
        Ok(())
    }

    /// An admitted session from `ip` logged in (once per session: see [`Admission`]).
    fn logged_in(&self, ip: IpAddr) {
        if let Some(n) = self.map().get_mut(&address_key(ip)) {
            n.unauthenticated = n.unauthenticated.saturating_sub(1);
        }
    }

    /// Ends an admitted session; `logged_in`: [`logged_in`](Self::logged_in) was called for it.
    fn release(&self, ip: IpAddr, logged_in: bool) {
        let mut map = self.map();
        let key = address_key(ip);
        if let Some(n) = map.get_mut(&key) {
            n.all = n.all.saturating_sub(1);
            if !logged_in {
                n.unauthenticated = n.unauthenticated.saturating_sub(1);
            }
            if n.all == 0 {
                map.remove(&key);
            }
        }
    }

    /// Live sessions in all.
    pub fn total(&self) -> usize {
        self.map().values().map(|c| c.all).sum()
    }
}

/// A session's places in the [`SessionCounter`]: given back when dropped.
#[derive(Debug)]
pub struct Admission<'a> {
    counter: &'a SessionCounter,
    ip: IpAddr,
    logged_in: std::sync::atomic::AtomicBool,
}

impl Admission<'_> {
    /// The session logged in: its place among the sessions not logged in yet is free again.
    /// Once; later calls change nothing.
    pub fn logged_in(&self) {
        if !self
            .logged_in
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            self.counter.logged_in(self.ip);
        }
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        let logged_in = *self.logged_in.get_mut();
        self.counter.release(self.ip, logged_in);
    }
}

/// When failed logins lock an address out, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures that lock an address.
    pub max_failures: u32,
    /// How long failures count, and how long a lock lasts after the last failure.
    pub window: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(300),
        }
    }
}

/// One address's failed and running logins.
#[derive(Debug, Default)]
struct Failures {
    /// Failures per user name tried (by a hash of the name, so a table entry stays small
    /// whatever a client sends as a name).
    by_user: Vec<(u64, u32)>,
    /// All failures, the sum of `by_user`.
    count: u32,
    /// The last failure.
    last: Option<Instant>,
    /// Attempts begun and not yet settled.
    in_flight: u32,
}

impl Failures {
    /// Forgets failures older than `window` (all of them: a lock lasts `window` after the
    /// last failure).
    fn expire(&mut self, now: Instant, window: Duration) {
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) >= window)
        {
            self.by_user.clear();
            self.count = 0;
            self.last = None;
        }
    }

    fn locked_for(&self, now: Instant, policy: LockoutPolicy) -> Option<Duration> {
        let last = self.last?;
        (self.count >= policy.max_failures).then(|| {
            policy
                .window
                .saturating_sub(now.saturating_duration_since(last))
        })
    }

    fn is_empty(&self) -> bool {
        self.count == 0 && self.in_flight == 0
    }
}

/// Why a login attempt may not begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The address is locked out, for this long still.
    Locked(Duration),
    /// Attempts already running would reach the limit if they all failed: wait until one of
    /// them settles ([`LoginLockout::settled`]), then ask again.
    Busy,
}

/// How a login attempt ended, for the lockout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Wrong name, password, key or bucket: counts as a failure.
    Failed,
    /// Logged in: clears the failures of the same user name from this address.
    Succeeded,
    /// Neither (the store could not be reached, the client left): not counted.
    Neutral,
}

/// Failed logins per address (see [`address_key`]).
#[derive(Debug)]
pub struct LoginLockout {
    policy: LockoutPolicy,
    names: std::collections::hash_map::RandomState,
    map: Mutex<HashMap<IpAddr, Failures>>,
    settled: tokio::sync::Notify,
}

/// The table forgets settled, expired addresses once it holds this many.
const MAX_ADDRESSES: usize = 100_000;

impl LoginLockout {
    /// Lockout with `policy`.
    pub fn new(policy: LockoutPolicy) -> Self {
        Self {
            policy,
            names: std::collections::hash_map::RandomState::new(),
            map: Mutex::new(HashMap::new()),
            settled: tokio::sync::Notify::new(),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        crate::sync::lock(&self.map)
    }

    /// `Some(wait)` while `ip` is locked out. Takes no place (the accept loop's check).
    pub fn locked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut map = self.map();
        let f = map.get_mut(&address_key(ip))?;
        f.expire(now, self.policy.window);
        f.locked_for(now, self.policy)
    }

    /// Begins a login attempt from `ip`: checks the lock and takes a place in the count, in
    /// one step. `Ok` must be followed by one [`finish`](Self::finish).
    pub fn begin(&self, ip: IpAddr, now: Instant) -> Result<(), Wait> {
        let mut map = self.map();
        let key = address_key(ip);
        let f = map.entry(key).or_default();
        f.expire(now, self.policy.window);
        if let Some(wait) = f.locked_for(now, self.policy) {
            return Err(Wait::Locked(wait));
        }
        if f.count + f.in_flight >= self.policy.max_failures {
            return Err(Wait::Busy);
        }
        f.in_flight += 1;
        if map.len() > MAX_ADDRESSES {
            let window = self.policy.window;
            map.retain(|k, f| {
                f.expire(now, window);
                *k == key || !f.is_empty()
            });
        }
        Ok(())
    }

    /// Settles an attempt [`begin`](Self::begin) let through, made with the user name `user`.
    /// Returns the lock's length when this failure locked the address.
    pub fn finish(
        &self,
        ip: IpAddr,
        user: &str,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Duration> {
        let name = self.names.hash_one(user);
        let mut locked_now = None;
        {
            let mut map = self.map();
            let key = address_key(ip);
            if let Some(f) = map.get_mut(&key) {
                f.in_flight = f.in_flight.saturating_sub(1);
                f.expire(now, self.policy.window);
                match outcome {
                    Outcome::Failed => {
                        match f.by_user.iter_mut().find(|(n, _)| *n == name) {
                            Some((_, c)) => *c += 1,
                            None => f.by_user.push((name, 1)),
                        }
                        f.count += 1;
                        f.last = Some(now);
                        if f.count == self.policy.max_failures {
                            locked_now = Some(self.policy.window);
                        }
                    }
                    Outcome::Succeeded => {
                        if let Some(i) = f.by_user.iter().position(|(n, _)| *n == name) {
                            let (_, c) = f.by_user.swap_remove(i);
                            f.count = f.count.saturating_sub(c);
                        }
                    }
                    Outcome::Neutral => {}
                }
                if f.is_empty() {
                    map.remove(&key);
                }
            }
        }
        self.settled.notify_waiters();
        locked_now
    }

    /// Notified whenever an attempt settles (what a [`Wait::Busy`] attempt waits for).
    pub fn settled(&self) -> &tokio::sync::Notify {
        &self.settled
    }
}

/// Lets one log line through per key and period: the first refusal of an address is logged,
/// the ones after it within `period` are not.
#[derive(Debug)]
pub struct LogThrottle {
    period: Duration,
    last: Mutex<HashMap<IpAddr, Instant>>,
}

impl LogThrottle {
    /// One line per address per `period`.
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// True when a line about `ip` may be written now (and counts it as written).
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let mut last = crate::sync::lock(&self.last);
        let key = address_key(ip);
        if last
            .get(&key)
            .is_some_and(|t| now.saturating_duration_since(*t) < self.period)
        {
            return false;
        }
        if last.len() >= MAX_ADDRESSES {
            let period = self.period;
            last.retain(|_, t| now.saturating_duration_since(*t) < period);
        }
        last.insert(key, now);
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn address_keys() {
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let table = [
            ("10.0.0.1", "10.0.0.1"),
            ("::ffff:10.0.0.1", "10.0.0.1"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::"),
            ("2001:db8:1:3::1", "2001:db8:1:3::"),
            ("::1", "::"),
        ];
        for (given, key) in table {
            assert_eq!(address_key(v6(given)), v6(key), "{given}");
        }
    }

    #[test]
    fn session_limits() {
        let c = SessionCounter::default();
        let l = SessionLimits {
            max_sessions: 3,
            max_per_ip: 2,
        };
        assert_eq!(l.max_unauthenticated_per_ip(), 1);
        let a1 = c.admit(ip(1), l).unwrap();
        assert_eq!(
            c.admit(ip(1), l).err(),
            Some(Refusal::TooManyUnauthenticated),
            "one not logged in yet"
        );
        a1.logged_in();
        a1.logged_in();
        let a2 = c.admit(ip(1), l).unwrap();
        a2.logged_in();
        assert_eq!(c.admit(ip(1), l).err(), Some(Refusal::TooManyFromAddress));
        let b = c.admit(ip(2), l).unwrap();
        assert_eq!(c.admit(ip(3), l).err(), Some(Refusal::TooManySessions));
        drop(a1);
        assert_eq!(c.total(), 2);
        let d = c.admit(ip(3), l).unwrap();
        // A session that never logged in gives back its unauthenticated place too.
        drop(d);
        drop(b);
        assert!(c.admit(ip(2), l).is_ok());
        drop(a2);
        assert_eq!(c.total(), 0, "every place given back");
        // Dropped with its task (an aborted session): the places go with it.
        let task = async {
            let _held = c.admit(ip(4), l).unwrap();
            std::future::pending::<()>().await;
        };
        let mut task = Box::pin(task);
        let waker = std::task::Waker::noop();
        let _ = task
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker));
        assert_eq!(c.total(), 1);
        drop(task);
        assert_eq!(c.total(), 0);
        assert!(Refusal::TooManySessions.reply().starts_with("421 "));
        assert_eq!(
            Refusal::LockedOut(Duration::from_millis(1500)).reply(),
            "421 Too many failed logins from your address; try again in 1 s\r\n"
        );
    }

    #[test]
    fn unauthenticated_places_by_limit() {
        let cap = |max_per_ip| {
            SessionLimits {
                max_sessions: 64,
                max_per_ip,
            }
            .max_unauthenticated_per_ip()
        };
        for (per_ip, unauthenticated) in [(1, 1), (2, 1), (3, 1), (16, 8), (17, 8)] {
            assert_eq!(cap(per_ip), unauthenticated, "max_per_ip {per_ip}");
        }
    }

    #[test]
    fn ipv6_sessions_count_per_64() {
        let c = SessionCounter::default();
        let l = SessionLimits {
            max_sessions: 10,
            max_per_ip: 2,
        };
        let a: IpAddr = "2001:db8::1".parse().unwrap_or(ip(0));
        let b: IpAddr = "2001:db8::2".parse().unwrap_or(ip(0));
        let _held = c.admit(a, l).unwrap();
        assert_eq!(c.admit(b, l).err(), Some(Refusal::TooManyUnauthenticated));
    }

    /// Failures: `(address, user, outcome)` settled one after another, one second apart.
    fn run(lo: &LoginLockout, t0: Instant, steps: &[(u8, &str, Outcome)]) {
        for (i, (addr, user, outcome)) in steps.iter().enumerate() {
            let now = t0 + Duration::from_secs(i as u64);
            assert_eq!(lo.begin(ip(*addr), now), Ok(()), "step {i}");
            lo.finish(ip(*addr), user, *outcome, now);
        }
    }

    #[test]
    fn lockout_table() {
        use Outcome::{Failed, Succeeded};
        let p = LockoutPolicy {
            max_failures: 3,
            window: Duration::from_secs(60),
        };
        let s = Duration::from_secs;
        let t0 = Instant::now();
        let lo = LoginLockout::new(p);
        run(&lo, t0, &[(1, "bob", Failed), (1, "bob", Failed)]);
        assert_eq!(lo.locked(ip(1), t0 + s(2)), None, "two failures: not yet");
        assert_eq!(lo.begin(ip(1), t0 + s(2)), Ok(()));
        assert_eq!(lo.finish(ip(1), "x", Failed, t0 + s(2)), Some(s(60)));
        assert_eq!(lo.locked(ip(1), t0 + s(3)), Some(s(59)), "locked after 3");
        assert_eq!(lo.begin(ip(1), t0 + s(3)), Err(Wait::Locked(s(59))));
        assert_eq!(lo.locked(ip(2), t0 + s(3)), None, "other addresses");
        assert_eq!(
            lo.locked(ip(1), t0 + s(62)),
            None,
            "unlocked after the window"
        );
        assert_eq!(lo.begin(ip(1), t0 + s(62)), Ok(()));
        lo.finish(ip(1), "bob", Outcome::Neutral, t0 + s(62));

        // Old failures expire: two, then one after the window, do not lock.
        let lo = LoginLockout::new(p);
        run(&lo, t0, &[(3, "a", Failed), (3, "a", Failed)]);
        run(&lo, t0 + s(100), &[(3, "a", Failed)]);
        assert_eq!(lo.locked(ip(3), t0 + s(101)), None);

        // Another user's success does not clear the failures: alternating wrong passwords for
        // bob with good logins of alice locks the address after the third.
        let lo = LoginLockout::new(p);
        let alternate = [
            (4, "bob", Failed),
            (4, "alice", Succeeded),
            (4, "bob", Failed),
            (4, "alice", Succeeded),
            (4, "bob", Failed),
        ];
        run(&lo, t0, &alternate);
        assert!(lo.locked(ip(4), t0 + s(5)).is_some());

        // The same user's success clears that user's own failures, and only those.
        let lo = LoginLockout::new(p);
        run(
            &lo,
            t0,
            &[
                (5, "carol", Failed),
                (5, "dave", Failed),
                (5, "carol", Succeeded),
                (5, "carol", Failed),
                (5, "carol", Succeeded),
                (5, "dave", Failed),
            ],
        );
        assert_eq!(
            lo.locked(ip(5), t0 + s(6)),
            None,
            "carol's failures are gone"
        );
        run(&lo, t0 + s(7), &[(5, "erin", Failed)]);
        assert!(lo.locked(ip(5), t0 + s(8)).is_some(), "dave 2 + erin 1");
    }

    #[test]
    fn attempts_in_flight_take_places() {
        let p = LockoutPolicy {
            max_failures: 2,
            window: Duration::from_secs(60),
        };
        let t = Instant::now();
        let lo = LoginLockout::new(p);
        // IPv6 addresses of one /64 share the count.
        let a: IpAddr = "2001:db8::1".parse().unwrap_or(ip(0));
        let b: IpAddr = "2001:db8::99".parse().unwrap_or(ip(0));
        assert_eq!(lo.begin(a, t), Ok(()));
        assert_eq!(lo.begin(b, t), Ok(()));
        assert_eq!(
            lo.begin(a, t),
            Err(Wait::Busy),
            "two running: no place left"
        );
        assert_eq!(lo.begin(ip(9), t), Ok(()), "another address");
        // One fails: still one running, one failure: busy.
        assert_eq!(lo.finish(a, "bob", Outcome::Failed, t), None);
        assert_eq!(lo.begin(a, t), Err(Wait::Busy));
        // The other left without an answer: a place is free again.
        lo.finish(b, "bob", Outcome::Neutral, t);
        assert_eq!(lo.begin(b, t), Ok(()));
        assert_eq!(
            lo.finish(b, "bob", Outcome::Failed, t),
            Some(p.window),
            "the second failure locks"
        );
        assert_eq!(lo.begin(a, t), Err(Wait::Locked(p.window)));
    }

    #[test]
    fn log_throttle() {
        let th = LogThrottle::new(Duration::from_secs(60));
        let t = Instant::now();
        let s = Duration::from_secs;
        assert!(th.allow(ip(1), t));
        assert!(!th.allow(ip(1), t + s(1)));
        assert!(th.allow(ip(2), t + s(1)));
        assert!(!th.allow(ip(1), t + s(59)));
        assert!(th.allow(ip(1), t + s(60)));
    }
}
