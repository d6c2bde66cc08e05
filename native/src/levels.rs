//! The instruction sets the codec's kernels run on, chosen once at start-up (or by a test),
//! and [`per_level`], which compiles a kernel once for each. Every level does the same float
//! operations in the same order (`lowrank.rs`, `dot.rs`), so the choice changes no bit.

use std::sync::atomic::{AtomicU8, Ordering};

/// The instruction set the kernels run on; every level gives the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Baseline = 0,
    Avx2 = 1,
    Avx512 = 2,
}

static LEVEL: AtomicU8 = AtomicU8::new(u8::MAX);

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Baseline => "baseline",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    /// Every level this CPU runs, widest last.
    pub fn supported() -> Vec<Level> {
        let mut levels = vec![Level::Baseline];
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            if avx2 {
                levels.push(Level::Avx2);
            }
            if avx2 && is_x86_feature_detected!("avx512f") {
                levels.push(Level::Avx512);
            }
        }
        levels
    }

    pub fn current() -> Level {
        match LEVEL.load(Ordering::Relaxed) {
            0 => Level::Baseline,
            1 => Level::Avx2,
            2 => Level::Avx512,
            _ => {
                let widest = *Level::supported().last().unwrap_or(&Level::Baseline);
                LEVEL.store(widest as u8, Ordering::Relaxed);
                widest
            }
        }
    }

    pub fn select(level: Level) {
        LEVEL.store(level as u8, Ordering::Relaxed);
    }
}

/// `pub fn $name(args) -> ret`, which runs `$inner` compiled for the current [`Level`]:
/// `$inner` and all it calls are `#[inline(always)]`, so each copy is vectorised for its
/// instruction set.
macro_rules! per_level {
    ($(#[$meta:meta])* pub fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? => $inner:ident) => {
        $(#[$meta])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn wide($($arg: $ty),*) $(-> $ret)? { $inner($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { $inner($($arg),*) }
                match $crate::levels::Level::current() {
                    // SAFETY: a level is current only where the CPU supports it.
                    $crate::levels::Level::Avx512 => return unsafe { wide($($arg),*) },
                    $crate::levels::Level::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::levels::Level::Baseline => {}
                }
            }
            $inner($($arg),*)
        }
    };
}

pub(crate) use per_level;
