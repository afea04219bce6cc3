//! The BNDUPD judge on structured input: arbitrary binding options (as `Repr::bindings`
//! hands them out) and an arbitrary local record, through the path `Session::on_bndupd`
//! takes: `Binding::from_options`, `judge::check_bounds`, `judge::judge`, `judge::installed`.
//!
//! Input: byte 0 bit 0 clear: the options from the rest (`arbitrary`); set: bytes 1-2 are
//! the length (little-endian) of a failover message that follows (a captured BNDUPD, say),
//! whose every binding is judged. The rest is the local record and the judge's setting.
//!
//! Properties: nothing panics; the judge is a function of its inputs; an applied binding
//! keeps the partner's fields (`installed`, its relay info from option 8 too, none without
//! it), never its `tstp`/`atsfp` (no echo), and an installed ACTIVE lease ends no later than
//! the bounds allow (now + skew + longest lease + MCLT; infinite only on a reserved address);
//! a repaired one (`repaired`, the partner's renewal that came back with our older end) is
//! never shorter than it came, keeps the bound, and is ours to send with a potential expiry
//! that covers it.
#![no_main]

use std::net::Ipv4Addr;

use control::failover::binding::Binding;
use control::failover::fsm::StateKind;
use control::failover::judge::{self, Bounds, Verdict};
use control::failover::msg::{BindingStatus, Options, Repr};
use control::failover::{Role, UnixTime};
use lease_mmap::{BindingState, ClientId, Lease, Owner, RelayInfo};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Our clock: the time of the ISC captures (`control/tests/data/isc-4.4.3`).
const NOW: u32 = 0x6b02_6ef9;

/// A time near the interesting edges: zero, never, around now, or anything.
fn time(u: &mut Unstructured<'_>) -> Result<UnixTime> {
    Ok(UnixTime(match u.int_in_range(0..=4u8)? {
        0 => 0,
        1 => u32::MAX,
        2 => NOW.wrapping_add_signed(i32::from(u.arbitrary::<i16>()?)),
        3 => NOW.wrapping_add_signed(u.int_in_range(-100_000..=2_000_000)?),
        _ => u.arbitrary()?,
    }))
}

fn opt<'a, T>(
    u: &mut Unstructured<'a>,
    f: impl FnOnce(&mut Unstructured<'a>) -> Result<T>,
) -> Result<Option<T>> {
    Ok(if u.arbitrary::<bool>()? {
        Some(f(u)?)
    } else {
        None
    })
}

fn options<'a>(u: &mut Unstructured<'a>) -> Result<Options<'a>> {
    Ok(Options {
        assigned_ip: opt(u, |u| Ok(Ipv4Addr::from(u.arbitrary::<u32>()?)))?,
        binding_status: opt(u, |u| u.int_in_range(0..=9u8))?,
        client_id: opt(u, |u| {
            let n = u.int_in_range(0..=260usize)?;
            u.bytes(n)
        })?,
        chaddr: opt(u, |u| {
            let n = u.int_in_range(0..=20usize)?;
            u.bytes(n)
        })?,
        lease_expiry: opt(u, time)?,
        potential_expiry: opt(u, time)?,
        stos: opt(u, time)?,
        cltt: opt(u, time)?,
        ip_flags: opt(u, |u| u.arbitrary())?,
        // DHCP options around an option 82, or anything.
        client_request_options: opt(u, |u| {
            let n = u.int_in_range(0..=140usize)?;
            u.bytes(n)
        })?,
        ..Options::default()
    })
}

fn lease(u: &mut Unstructured<'_>) -> Result<Lease> {
    let id_len = u.int_in_range(0..=255usize)?;
    Ok(Lease {
        state: *u.choose(&BindingState::ALL)?,
        ends: time(u)?,
        tstp: time(u)?,
        tsfp: time(u)?,
        atsfp: time(u)?,
        cltt: time(u)?,
        stos: time(u)?,
        htype: u.arbitrary()?,
        hlen: u.int_in_range(0..=16)?,
        chaddr: u.arbitrary()?,
        client_id: ClientId::new(u.bytes(id_len)?).unwrap_or(ClientId::EMPTY),
        owner: if u.arbitrary()? {
            Owner::Partner
        } else {
            Owner::Us
        },
        relay: {
            let n = u.int_in_range(0..=120usize)?;
            RelayInfo::keep(u.bytes(n)?)
        },
        hostname: {
            let n = u.int_in_range(0..=60usize)?;
            lease_mmap::Hostname::keep(u.bytes(n)?, &RelayInfo::EMPTY)
        },
    })
}

fn run(o: &Options<'_>, u: &mut Unstructured<'_>) -> Result<()> {
    let local = lease(u)?;
    let us = if u.arbitrary()? {
        Role::Primary
    } else {
        Role::Secondary
    };
    let state = *u.choose(&StateKind::ALL)?;
    let in_flight: bool = u.arbitrary()?;
    let reserved: bool = u.arbitrary()?;
    let now = UnixTime(NOW);
    let bounds = Bounds {
        now,
        max_clock_skew: u.int_in_range(0..=3600)?,
        max_lease_time: u.int_in_range(0..=86_400 * 30)?,
        mclt: u.int_in_range(0..=86_400)?,
    };

    let b = match Binding::from_options(o) {
        Ok(b) => b,
        Err(e) => {
            assert!(!e.message.is_empty());
            return Ok(());
        }
    };
    assert_eq!(Some(b.ip), o.assigned_ip);
    assert_eq!(Some(b.status as u8), o.binding_status);
    // The BNDUPD built from a binding parses back to it (an empty hardware address option
    // is accepted but not sent: ISC takes that as none).
    if o.chaddr.is_none_or(|c| !c.is_empty()) {
        let again = Binding::from_repr(&b.to_repr()).expect("a binding's own BNDUPD is accepted");
        assert_eq!(again, b);
    }

    // As `Session::on_bndupd`: bounds first, then the judge.
    if judge::check_bounds(&b, reserved, &bounds).is_err() {
        return Ok(());
    }
    let verdict = judge::judge(us, state, &local, in_flight, &b, now);
    assert_eq!(verdict, judge::judge(us, state, &local, in_flight, &b, now));
    if let Verdict::Reject(e) = verdict {
        assert!(!e.message.is_empty());
    }
    if verdict == Verdict::Repair {
        // The partner's renewal kept, never shorter than it came, within the bounds, and
        // ours to send with a potential expiry that covers it.
        let kept = judge::repaired(&local, &b, &bounds);
        assert_eq!(kept.state, BindingState::Active);
        assert_eq!(kept.cltt, b.cltt);
        assert!(kept.ends >= b.ends);
        assert!(
            u64::from(kept.ends.0)
                <= (u64::from(b.cltt.0)
                    + u64::from(bounds.max_lease_time)
                    + u64::from(bounds.mclt))
                .max(u64::from(b.ends.0)),
            "repaired lease ends past the bounds"
        );
        assert!(judge::unacked(&kept) && kept.tstp >= kept.ends);
        return Ok(());
    }
    if verdict != Verdict::Apply {
        return Ok(());
    }
    let new = judge::installed(&local, &b);
    // The partner's fields.
    assert_eq!(new.state, b.status.to_lease());
    assert_eq!(new.ends, b.ends);
    assert_eq!(new.tsfp, b.potential_expiry);
    assert_eq!(new.owner, Owner::Partner);
    if b.stos.0 != 0 {
        assert_eq!(new.stos, b.stos);
    }
    if b.cltt.0 != 0 {
        assert_eq!(new.cltt, b.cltt);
    }
    if let Some(c) = b.chaddr() {
        assert_eq!(new.htype, c[0]);
        assert_eq!(&new.chaddr[..usize::from(new.hlen)], &c[1..]);
    }
    if !b.client_id.is_empty() {
        assert_eq!(new.client_id, b.client_id);
    }
    assert_eq!(new.relay, b.relay());
    assert_eq!(new.hostname, b.hostname());
    // Not echoed back to the partner.
    assert_eq!((new.tstp, new.atsfp), (UnixTime(0), UnixTime(0)));
    assert!(!judge::unacked(&new));
    // The bounds hold on what is installed.
    if new.state == BindingState::Active {
        if new.ends == UnixTime(u32::MAX) {
            assert!(reserved, "infinite lease installed outside a reservation");
        } else {
            let limit = u64::from(NOW)
                + u64::from(bounds.max_clock_skew)
                + u64::from(bounds.max_lease_time)
                + u64::from(bounds.mclt);
            assert!(
                u64::from(new.ends.0) <= limit,
                "installed lease ends past the bounds"
            );
        }
    }
    // The installed record travels as the same binding.
    let out = Binding::from_lease(b.ip, &new, b.ip_flags).expect("an installed record travels");
    assert_eq!(
        (out.status, out.ends, out.relay()),
        (b.status, b.ends, b.relay())
    );
    if b.status != BindingStatus::Abandoned
        && let Some(c) = b.chaddr().filter(|c| c.len() > 1)
    {
        assert_eq!(out.chaddr(), Some(c));
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    if how & 1 == 0 {
        let mut u = Unstructured::new(rest);
        if let Ok(o) = options(&mut u) {
            let _ = run(&o, &mut u);
        }
        return;
    }
    // A whole failover message (a captured BNDUPD, say), then the rest.
    let [lo, hi, rest @ ..] = rest else { return };
    let (msg, rest) = rest.split_at(usize::from(u16::from_le_bytes([*lo, *hi])).min(rest.len()));
    let Ok(repr) = Repr::parse_bytes(msg) else {
        return;
    };
    let mut u = Unstructured::new(rest);
    for o in repr.bindings() {
        if run(&o, &mut u).is_err() {
            return;
        }
    }
});
