//! The schedule's steps: apply, pause, resume, remove and get (what the CLI calls), the tick that
//! one rule delivery runs, the retention sweep, and the settle checks the sweep sends.

mod apply;
mod context;
mod settle;
mod sweep;
mod tick;

pub use apply::{apply, get, remove, set_paused, tick_input_template};
pub use context::SchedulerEnv;
pub use settle::{SettleCheck, settle_checks};
pub use sweep::{SweepEntry, SweepOutput, sweep, sweep_at};
pub use tick::{
    EVENT_TIME_AHEAD_SECONDS, EVENT_TIME_BEHIND_SECONDS, TickInput, TickOutput, catch_up,
    event_time, last_backup_busy, tick, tick_at,
};
