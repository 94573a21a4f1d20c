//! A local serial port (a USB/RS-485 adapter, an on-board UART) as a link.
//!
//! The crate is `serial2-tokio`: of the three fieldbus.md compares, it is
//! the one kept most actively (releases through 2026), it needs no system
//! library (libc only; `serialport` wants libudev by default), and it has
//! the Linux RS-485 ioctl built in should a board need it (`tokio-serial`
//! has none). USB adapters switch direction in hardware, so RS-485 mode is
//! not set. Opening is a blocking system call and runs on the blocking pool.

use std::io;
use std::path::Path;

use serial2_tokio::{CharSize, FlowControl, SerialPort, Settings, StopBits};

use crate::config::{Parity, SerialLine};

/// Opens `device` with the line settings of `line` (raw mode, no flow
/// control) and discards whatever the driver had buffered.
///
/// # Errors
/// The device cannot be opened or refuses the settings; the message names it.
pub async fn open(device: &Path, line: SerialLine) -> io::Result<SerialPort> {
    let path = device.to_path_buf();
    let opened = tokio::task::spawn_blocking(move || {
        let port = SerialPort::open(&path, move |mut s: Settings| {
            s.set_raw();
            s.set_baud_rate(line.baud)?;
            s.set_char_size(if line.data_bits == 7 {
                CharSize::Bits7
            } else {
                CharSize::Bits8
            });
            s.set_stop_bits(if line.stop_bits == 2 {
                StopBits::Two
            } else {
                StopBits::One
            });
            s.set_parity(match line.parity {
                Parity::None => serial2_tokio::Parity::None,
                Parity::Even => serial2_tokio::Parity::Even,
                Parity::Odd => serial2_tokio::Parity::Odd,
            });
            s.set_flow_control(FlowControl::None);
            Ok(s)
        })?;
        // Bytes a previous user left in the driver are not ours to answer.
        let _ = port.discard_input_buffer();
        Ok::<_, io::Error>(port)
    })
    .await
    .map_err(io::Error::other)?;
    opened.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", device.display())))
}
