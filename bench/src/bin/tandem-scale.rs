//! tandem-scale: lease-mmap's `Store` at 10k, 1M (and on demand 10M) leases: table creation,
//! fill, clean open time, crash-recovery time, resident memory and bytes of disk per lease.
//!
//! ```text
//! tandem-scale [--sizes 10000,1000000] [--dir /var/tmp] [--updates N] [--json FILE]
//! ```
//!
//! For each size N, in a fresh directory under `--dir` (removed afterwards), each step in its
//! own child process so that its RSS is its own:
//! 1. `fill`: create the store (one table of N addresses, one worker) and bind every address
//!    through `Table::allocate` + journal record (durability async, a commit per 64), then
//!    close cleanly (checkpoint). Reports the creation and fill times.
//! 2. `open`: open the cleanly closed store: the client index is rebuilt from N bound records.
//!    Reports the open time and VmRSS / VmHWM from `/proc/self/status` after it.
//! 3. `crash`: open, renew `--updates` leases (default min(N, 100,000)) through the journal
//!    (durability sync, a commit per 64), then exit without closing (no checkpoint): the
//!    journals hold everything since the last checkpoint.
//! 4. `open` again: crash recovery, replaying those journal entries. Reports the time, the
//!    entries replayed and the RSS.
//!
//! Disk: allocated blocks (st_blocks × 512) after step 1, per lease: the table file, the
//! journals (one 512-byte entry per fill allocation, not truncated by the checkpoint), all.
//! 10M needs ~8 GB of disk with the fill's journal (~2.6 GB of table).
//!
//! Output: a line per step on stderr, a Markdown table row per size on stdout, and one JSON
//! line per size appended to `--json FILE`.

use std::error::Error;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lease_mmap::{
    AllocCursor, BindingState, Durability, Lease, Slot, Store, TableId, TableSpec, UnixTime,
};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// The largest table lease-mmap makes: 2^24 addresses (`store::MAX_RECORDS`, not exported).
const MAX_RECORDS: u32 = 1 << 24;

fn spec(n: u32) -> TableSpec {
    let first = Ipv4Addr::new(10, 0, 0, 0);
    let last = Ipv4Addr::from(u32::from(first) + n - 1);
    TableSpec {
        network: first,
        prefix_len: 8,
        first,
        last,
        allocatable: vec![(first, last)],
    }
}

fn lease(i: u32, ends: u32) -> Lease {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&[
        0x02,
        0x5c,
        (i >> 24) as u8,
        (i >> 16) as u8,
        (i >> 8) as u8,
        i as u8,
    ]);
    Lease {
        state: BindingState::Active,
        ends: UnixTime(ends),
        cltt: UnixTime(1_700_000_000),
        htype: 1,
        hlen: 6,
        chaddr,
        ..Lease::default()
    }
}

/// (VmRSS, VmHWM) in KiB.
fn rss_kib() -> (u64, u64) {
    let (rss, hwm, _) = rss_detail_kib();
    (rss, hwm)
}

/// (VmRSS, VmHWM, RssAnon) in KiB: RssAnon is the process's own memory (the client index and
/// friends); the rest of VmRSS is the mapped table's pages, shared with the page cache.
fn rss_detail_kib() -> (u64, u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |key: &str| {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"), get("RssAnon:"))
}

fn child_fill(dir: &Path, n: u32) -> Result<()> {
    let t0 = Instant::now();
    let (store, mut journals, _) = Store::open(dir, &[spec(n)], 1, Durability::Async)?;
    let create = t0.elapsed().as_secs_f64();
    let t = store.table(TableId(0));
    let mut cursor = AllocCursor::new(0, 1);
    let free_only = lease_mmap::free_only;
    let t1 = Instant::now();
    let mut bound = 0u32;
    let j = journals.first_mut().ok_or("no journal")?;
    while bound < n {
        let l = lease(bound, 1_700_003_600);
        let Some((slot, version)) =
            t.allocate(&mut cursor, UnixTime(1_700_000_000), &l, &free_only)
        else {
            break;
        };
        j.record(t.id(), slot, version, &l);
        bound += 1;
        if bound.is_multiple_of(64) {
            j.commit()?;
        }
    }
    j.commit()?;
    let fill = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    store.close(journals)?;
    let close = t2.elapsed().as_secs_f64();
    let (rss, hwm) = rss_kib();
    println!(
        "create_s={create:.4} fill_s={fill:.4} close_s={close:.4} bound={bound} rss_kib={rss} hwm_kib={hwm}"
    );
    Ok(())
}

fn child_open(dir: &Path, n: u32) -> Result<()> {
    let (rss0, _) = rss_kib();
    let t0 = Instant::now();
    let (store, journals, report) = Store::open(dir, &[spec(n)], 1, Durability::Sync)?;
    let open = t0.elapsed().as_secs_f64();
    let (rss, hwm, anon) = rss_detail_kib();
    println!(
        "open_s={open:.4} replayed={} clean={} rss_kib={rss} hwm_kib={hwm} anon_kib={anon} rss_before_kib={rss0} mapped_bytes={}",
        report.replayed,
        report.clean,
        store.mapped_bytes()
    );
    store.close(journals)?;
    Ok(())
}

fn child_crash(dir: &Path, n: u32, updates: u32) -> Result<()> {
    let (store, mut journals, _) = Store::open(dir, &[spec(n)], 1, Durability::Sync)?;
    let t = store.table(TableId(0));
    let j = journals.first_mut().ok_or("no journal")?;
    let t0 = Instant::now();
    let step = (n / updates.max(1)).max(1);
    let mut done = 0u32;
    for k in 0..updates.min(n) {
        let s = Slot((k * step) % n);
        let (v, old) = t.read(s);
        let mut l = old;
        l.ends = UnixTime(old.ends.0 + 3600);
        let nv = t.update(s, v, &l)?;
        j.record(t.id(), s, nv, &l);
        done += 1;
        if done.is_multiple_of(64) {
            j.commit()?;
        }
    }
    j.commit()?;
    println!("updates={done} update_s={:.4}", t0.elapsed().as_secs_f64());
    std::io::stdout().flush()?;
    // A crash: no close, no checkpoint, no destructors.
    std::process::exit(0);
}

/// Runs this binary as `child STEP DIR N [ARG]`; returns its `key=value` output.
fn run_child(step: &str, dir: &Path, n: u32, arg: u32) -> Result<Vec<(String, String)>> {
    let out = Command::new(std::env::current_exe()?)
        .args(["child", step])
        .arg(dir)
        .arg(n.to_string())
        .arg(arg.to_string())
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "step {step} at {n}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("[scale] {n:>9} {step:<6} {}", text.trim());
    Ok(text
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

fn get(kv: &[(String, String)], key: &str) -> String {
    kv.iter()
        .find(|(k, _)| k == key)
        .map_or_else(|| "0".to_owned(), |(_, v)| v.clone())
}

/// Allocated bytes (st_blocks × 512) of the tables (`*.tdt`), of the journals (`*.tdj`) and of
/// everything in `dir`.
fn disk_usage(dir: &Path) -> Result<(u64, u64, u64)> {
    let (mut tables, mut journals, mut all) = (0u64, 0u64, 0u64);
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        if !m.is_file() {
            continue;
        }
        let bytes = m.blocks() * 512;
        all += bytes;
        match e.path().extension().and_then(|x| x.to_str()) {
            Some("tdt") => tables += bytes,
            Some("tdj") => journals += bytes,
            _ => {}
        }
    }
    Ok((tables, journals, all))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        let step = args.get(1).ok_or("child STEP")?;
        let dir = PathBuf::from(args.get(2).ok_or("child STEP DIR")?);
        let n: u32 = args.get(3).ok_or("child STEP DIR N")?.parse()?;
        let arg: u32 = args.get(4).map_or(Ok(0), |a| a.parse())?;
        return match step.as_str() {
            "fill" => child_fill(&dir, n),
            "open" => child_open(&dir, n),
            "crash" => child_crash(&dir, n, arg),
            _ => Err(format!("unknown step {step}").into()),
        };
    }
    let mut sizes = vec![10_000u32, 1_000_000];
    let mut base = PathBuf::from("/var/tmp");
    let mut updates: Option<u32> = None;
    let mut json: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--sizes" => {
                sizes = val()?
                    .split(',')
                    .map(|s| s.trim().replace('_', "").parse::<u32>())
                    .collect::<std::result::Result<_, _>>()?
            }
            "--dir" => base = PathBuf::from(val()?),
            "--updates" => updates = Some(val()?.parse()?),
            "--json" => json = Some(PathBuf::from(val()?)),
            "-h" | "--help" => {
                println!(
                    "tandem-scale [--sizes 10000,1000000] [--dir /var/tmp] [--updates N] [--json FILE]"
                );
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    println!(
        "| leases | create (s) | fill (s) | clean open (s) | RSS after open: all / anonymous (MiB) | crash: renewals journalled | recovery open (s) | RSS after recovery (MiB) | disk bytes/lease: table / journals / all |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &n in &sizes {
        if !(2..=MAX_RECORDS).contains(&n) {
            return Err(format!("size {n} outside 2..={}", MAX_RECORDS).into());
        }
        let dir = tempfile::Builder::new()
            .prefix("lg-scale.")
            .tempdir_in(&base)?;
        let d = dir.path().join("data");
        let fill = run_child("fill", &d, n, 0)?;
        let (tables, journals, all) = disk_usage(&d)?;
        let open = run_child("open", &d, n, 0)?;
        let u = updates.unwrap_or_else(|| n.min(100_000));
        let crash = run_child("crash", &d, n, u)?;
        let rec = run_child("open", &d, n, 0)?;
        let mib =
            |kv: &[(String, String)]| get(kv, "rss_kib").parse::<f64>().unwrap_or(0.0) / 1024.0;
        println!(
            "| {n} | {} | {} | {} | {:.1} / {:.1} | {} | {} ({} replayed) | {:.1} | {:.0} / {:.0} / {:.0} |",
            get(&fill, "create_s"),
            get(&fill, "fill_s"),
            get(&open, "open_s"),
            mib(&open),
            get(&open, "anon_kib").parse::<f64>().unwrap_or(0.0) / 1024.0,
            get(&crash, "updates"),
            get(&rec, "open_s"),
            get(&rec, "replayed"),
            mib(&rec),
            tables as f64 / f64::from(n),
            journals as f64 / f64::from(n),
            all as f64 / f64::from(n),
        );
        if let Some(path) = &json {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            writeln!(
                f,
                "{{\"leases\":{n},\"create_s\":{},\"fill_s\":{},\"open_s\":{},\"open_rss_kib\":{},\"open_anon_kib\":{},\"crash_updates\":{},\"recovery_open_s\":{},\"replayed\":{},\"recovery_rss_kib\":{},\"table_bytes\":{tables},\"journal_bytes\":{journals},\"disk_bytes\":{all}}}",
                get(&fill, "create_s"),
                get(&fill, "fill_s"),
                get(&open, "open_s"),
                get(&open, "rss_kib"),
                get(&open, "anon_kib"),
                get(&crash, "updates"),
                get(&rec, "open_s"),
                get(&rec, "replayed"),
                get(&rec, "rss_kib"),
            )?;
        }
        drop(dir);
    }
    Ok(())
}
