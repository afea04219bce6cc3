//! RFC 3074 hash and hash bucket assignment, against ISC dhcpd 4.4's `load_balance_mine`
//! (`server/failover.c:5958-6010`) and its unit test `server/tests/load_bal_unittest.c`.

use control::failover::Role;
use control::failover::hash::{Hba, LoadBalance, MIXING_TABLE, client_bucket, pearson};

#[test]
fn mixing_table_is_a_permutation_matching_rfc3074() {
    let mut seen = [false; 256];
    for &v in &MIXING_TABLE {
        assert!(!seen[usize::from(v)], "{v} twice");
        seen[usize::from(v)] = true;
    }
    // Spot checks against RFC 3074 §6 (first row, last row).
    assert_eq!(&MIXING_TABLE[..4], &[251, 175, 119, 215]);
    assert_eq!(&MIXING_TABLE[252..], &[6, 169, 234, 151]);
    // The full table as shipped beside the reference, when the checkout has it.
    for path in [
        "../shared/reference/rfc3074-mixing-table.txt",
        "/work/shared/reference/rfc3074-mixing-table.txt",
    ] {
        if let Ok(text) = std::fs::read_to_string(path) {
            let vals: Vec<u8> = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .flat_map(|l| l.split_whitespace().map(|v| v.parse::<u8>().unwrap()))
                .collect();
            assert_eq!(vals, MIXING_TABLE.to_vec(), "table differs from {path}");
        }
    }
}

#[test]
fn pearson_by_hand() {
    // h = len; from the last byte to the first, h = T[h ^ b].
    assert_eq!(pearson(&[]), 0); // no bytes: h stays len = 0
    assert_eq!(pearson(&[14]), MIXING_TABLE[1 ^ 14]); // = T[15] = 232
    assert_eq!(pearson(&[14]), 232);
    // Two bytes [a, b]: h = T[2 ^ b], then T[h ^ a].
    let (a, b) = (0x02u8, 0x01u8);
    let h1 = MIXING_TABLE[usize::from(2 ^ b)];
    assert_eq!(pearson(&[a, b]), MIXING_TABLE[usize::from(h1 ^ a)]);
    // A MAC 02:00:00:00:00:01, worked by hand:
    // h=6; b=01: T[7]=191; b=00: T[191]=238, T[238]=24, T[24]=174, T[174]=247;
    // b=02: T[247^2=245]=133.
    assert_eq!(pearson(&[2, 0, 0, 0, 0, 1]), 133);
    // The length only counts mod 256, as ISC's `unsigned char hash = len`.
    let long = vec![0u8; 256];
    let mut h = 0u8;
    for _ in 0..256 {
        h = MIXING_TABLE[usize::from(h)];
    }
    assert_eq!(pearson(&long), h);
}

#[test]
fn client_id_wins_over_chaddr() {
    let chaddr = [2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(client_bucket(None, &chaddr, 6), 133);
    assert_eq!(client_bucket(Some(&[]), &chaddr, 6), 133);
    let id = [1, 2, 0, 0, 0, 0, 1];
    assert_eq!(client_bucket(Some(&id), &chaddr, 6), pearson(&id));
    // hlen past 16 is cut to chaddr's 16 bytes.
    assert_eq!(client_bucket(None, &chaddr, 200), pearson(&chaddr));
}

#[test]
fn hba_bit_order_is_isc_lsb_first() {
    // split 1: bucket 0 = byte 0 bit 0x01 (confpars.c:1112-1117, failover.c:6004).
    assert_eq!(Hba::split(1).0[0], 0x01);
    assert_eq!(Hba::split(3).0[0], 0x07);
    assert_eq!(Hba::split(9).0[..2], [0xff, 0x01]);
    assert_eq!(Hba::split(128).0, {
        let mut b = [0u8; 32];
        b[..16].fill(0xff);
        b
    });
    assert_eq!(Hba::split(256), Hba::ALL);
    assert_eq!(Hba::split(999), Hba::ALL);
    assert_eq!(Hba::split(0), Hba::NONE);
    for n in 0..=256u16 {
        let h = Hba::split(n);
        assert_eq!(h.count(), n);
        for b in 0..=255u8 {
            assert_eq!(h.is_set(b), u16::from(b) < n);
            assert_eq!(h.serves(Role::Primary, b), !h.serves(Role::Secondary, b));
        }
    }
    let mut h = Hba::NONE;
    h.set(10, true);
    assert_eq!(h.0[1], 0x04);
    h.set(10, false);
    assert_eq!(h, Hba::NONE);
    assert_eq!(Hba::from_bytes(&[0; 31]), None);
    assert_eq!(Hba::from_bytes(&[0xff; 32]), Some(Hba::ALL));
}

/// `load_bal_unittest.c`: hlen 1, chaddr[0] = 14, HBA all ones, max seconds 5.
#[test]
fn isc_load_bal_unittest() {
    let bucket = client_bucket(None, &[14], 1);
    let lb = |role, check_secs_byte_order| LoadBalance {
        role,
        hba: Some(Hba::ALL),
        max_seconds: 5,
        check_secs_byte_order,
    };
    let (p, s) = (lb(Role::Primary, false), lb(Role::Secondary, false));
    // secs 0 and 2: primary yes, secondary no.
    for secs in [0, 2] {
        assert!(p.mine(secs, bucket));
        assert!(!s.mine(secs, bucket));
    }
    // secs 6 and 257: past max seconds, both answer.
    for secs in [6, 257] {
        assert!(p.mine(secs, bucket));
        assert!(s.mine(secs, bucket));
    }
    // load_balance_swap: with check-secs-byte-order, 256 is read as 1 and 1536 as 6.
    let (p, s) = (lb(Role::Primary, true), lb(Role::Secondary, true));
    assert!(p.mine(256, bucket));
    assert!(!s.mine(256, bucket));
    assert!(p.mine(256 * 6, bucket));
    assert!(s.mine(256 * 6, bucket));
    // Max seconds 0 switches load balancing off; no HBA yet means "not mine".
    let off = LoadBalance {
        role: Role::Secondary,
        hba: Some(Hba::ALL),
        max_seconds: 0,
        check_secs_byte_order: false,
    };
    assert!(off.mine(0, bucket));
    let unknown = LoadBalance {
        role: Role::Secondary,
        hba: None,
        max_seconds: 5,
        check_secs_byte_order: false,
    };
    assert!(!unknown.mine(0, bucket));
}

#[test]
fn split_128_balances_clients_roughly_evenly() {
    let hba = Hba::split(128);
    let mut primary = 0u32;
    for i in 0..10_000u32 {
        let mac = [2, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8, 7];
        if hba.serves(Role::Primary, client_bucket(None, &mac, 6)) {
            primary += 1;
        }
    }
    assert!(
        (4_000..6_000).contains(&primary),
        "primary got {primary} of 10000"
    );
}
