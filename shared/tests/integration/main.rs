//! Integration tests of the jobline library against a real PostgreSQL.
//! Run them with `scripts/test`, which starts the server.

mod alerts;
mod api;
mod audit;
mod claim;
mod connections;
mod create;
mod dashboard;
mod handlers;
mod keys;
mod lambda;
mod lifecycle;
mod metrics;
mod migrations;
mod outbox;
mod outputs;
mod pipeline;
mod queue_contract;
mod queue_postgres;
mod queue_redis;
mod queue_sqs;
mod queue_upstash;
mod read;
mod release;
mod retention;
mod rewake;
mod sql_api;
mod stats_views;
mod support;
mod worker;
