//! Socket calls a test makes with a timeout, retried when the kernel interrupts them.
//!
//! A blocking socket call with `SO_RCVTIMEO`/`SO_SNDTIMEO` set is never restarted: when the
//! test process is stopped and continued (a frozen CI machine, a debugger attaching), it
//! fails with `EINTR` even though no signal handler runs (signal(7), "Interruption of system
//! calls and library functions by stop signals"). The product retries it; so do the tests.
use std::io;

/// Runs `call` again while it fails with [`io::ErrorKind::Interrupted`]; any other result
/// (data, a time-out, a real error) is returned as it is.
pub fn retrying<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupted_calls_are_made_again_and_other_errors_returned() {
        let mut calls = 0;
        let r = retrying(|| {
            calls += 1;
            if calls < 3 {
                Err(io::Error::from(io::ErrorKind::Interrupted))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 3);
        let r: io::Result<()> = retrying(|| Err(io::Error::from(io::ErrorKind::WouldBlock)));
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }
}
