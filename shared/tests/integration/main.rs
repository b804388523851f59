//! Integration tests of the jobline library against a real PostgreSQL.
//! Run them with `scripts/test`, which starts the server.

mod claim;
mod create;
mod lifecycle;
mod migrations;
mod read;
mod release;
mod stats_views;
mod support;
