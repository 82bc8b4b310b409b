//! `affinity-import`: replays public e-commerce data sets through Affinity's ingest API.
//!
//! The pieces, in the order a replay uses them:
//! * [`rees46`], [`gms`], [`uci`] read one source format each into [`event::Event`]s, counting
//!   every row that is bad or skipped ([`source::Parsed`]);
//! * [`shape`] moves timestamps to now and groups events into requests;
//! * [`send`] posts the requests with a pool of threads through [`client`];
//! * [`guest`] maps file user ids to the live route's guest ids; [`report`] picks the busiest
//!   shoppers and reads what the service holds about them;
//! * [`replay`] ties it together for the command line ([`cli`]).

#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod event;
pub mod gms;
pub mod guest;
pub mod rees46;
pub mod replay;
pub mod report;
pub mod send;
pub mod shape;
pub mod source;
pub mod uci;
pub mod values;
