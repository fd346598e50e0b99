//! Connection limits and the failed-login lockout. Pure bookkeeping: callers pass the time in,
//! so the rules are table-tested without sleeping.
//!
//! - Sessions: at most `max_sessions` in all and `max_per_ip` from one address; a connection
//!   over either limit is told `421` and closed.
//! - Lockout: after `max_failures` failed logins from one address within `window`, further
//!   logins from it are refused with `530` without asking the store, until `window` has passed
//!   since the last failure. A successful login clears the address's count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Counts live sessions per address.
#[derive(Debug, Default)]
pub struct SessionCounter {
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The gateway is full.
    TooManySessions,
    /// This address has too many sessions.
    TooManyFromAddress,
}

impl Refusal {
    /// The `421` reply line.
    pub fn reply(self) -> &'static str {
        match self {
            Refusal::TooManySessions => "421 Too many sessions on this server, try again later\r\n",
            Refusal::TooManyFromAddress => {
                "421 Too many sessions from your address, close some and try again\r\n"
            }
        }
    }
}

impl SessionCounter {
    /// Admits a session from `ip`, or says why not. Admitted sessions must be `release`d.
    pub fn admit(&self, ip: IpAddr, limits: SessionLimits) -> Result<(), Refusal> {
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = map.values().sum();
        if total >= limits.max_sessions {
            return Err(Refusal::TooManySessions);
        }
        let n = map.entry(ip).or_insert(0);
        if *n >= limits.max_per_ip {
            return Err(Refusal::TooManyFromAddress);
        }
        *n += 1;
        Ok(())
    }

    /// Ends an admitted session.
    pub fn release(&self, ip: IpAddr) {
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }

    /// Live sessions in all.
    pub fn total(&self) -> usize {
        self.per_ip
            .lock()
            .map(|m| m.values().sum())
            .unwrap_or_default()
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

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failed logins per address.
#[derive(Debug)]
pub struct LoginLockout {
    policy: LockoutPolicy,
    map: Mutex<HashMap<IpAddr, Failures>>,
}

impl LoginLockout {
    /// Lockout with `policy`.
    pub fn new(policy: LockoutPolicy) -> Self {
        Self {
            policy,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` while `ip` is locked out.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&ip).copied() {
            Some(f) if now.duration_since(f.last) >= self.policy.window => {
                map.remove(&ip);
                Ok(())
            }
            Some(f) if f.count >= self.policy.max_failures => {
                Err(self.policy.window - now.duration_since(f.last))
            }
            _ => Ok(()),
        }
    }

    /// Records a failed login.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.entry(ip).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(e.last) >= self.policy.window {
            e.count = 0;
        }
        e.count += 1;
        e.last = now;
        // Bound the table: forget the stalest entries under a flood of addresses.
        if map.len() > 100_000 {
            let window = self.policy.window;
            map.retain(|_, f| now.duration_since(f.last) < window);
        }
    }

    /// Records a successful login.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn session_limits() {
        let c = SessionCounter::default();
        let l = SessionLimits {
            max_sessions: 3,
            max_per_ip: 2,
        };
        assert_eq!(c.admit(ip(1), l), Ok(()));
        assert_eq!(c.admit(ip(1), l), Ok(()));
        assert_eq!(c.admit(ip(1), l), Err(Refusal::TooManyFromAddress));
        assert_eq!(c.admit(ip(2), l), Ok(()));
        assert_eq!(c.admit(ip(3), l), Err(Refusal::TooManySessions));
        c.release(ip(1));
        assert_eq!(c.total(), 2);
        assert_eq!(c.admit(ip(3), l), Ok(()));
        assert!(Refusal::TooManySessions.reply().starts_with("421 "));
    }

    #[test]
    fn lockout_table() {
        let p = LockoutPolicy {
            max_failures: 3,
            window: Duration::from_secs(60),
        };
        let lo = LoginLockout::new(p);
        let t0 = Instant::now();
        let s = Duration::from_secs;
        for i in 0..2 {
            lo.failed(ip(1), t0 + s(i));
        }
        assert_eq!(lo.check(ip(1), t0 + s(2)), Ok(()), "two failures: not yet");
        lo.failed(ip(1), t0 + s(2));
        assert_eq!(lo.check(ip(1), t0 + s(3)), Err(s(59)), "locked after three");
        assert_eq!(
            lo.check(ip(2), t0 + s(3)),
            Ok(()),
            "other addresses unaffected"
        );
        assert_eq!(
            lo.check(ip(1), t0 + s(62)),
            Ok(()),
            "unlocked after the window"
        );
        // Old failures expire: two now and one after the window do not lock.
        lo.failed(ip(3), t0);
        lo.failed(ip(3), t0 + s(1));
        lo.failed(ip(3), t0 + s(100));
        assert_eq!(lo.check(ip(3), t0 + s(101)), Ok(()));
        // Success clears.
        for i in 0..2 {
            lo.failed(ip(4), t0 + s(i));
        }
        lo.succeeded(ip(4));
        lo.failed(ip(4), t0 + s(3));
        assert_eq!(lo.check(ip(4), t0 + s(4)), Ok(()));
    }
}
