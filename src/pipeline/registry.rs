//! The component registry: every source, transform and sink type, named in this one file.
//!
//! Each kind has one enum of built components and two steps:
//! - **build** (at load, no IO): deserialise a component's table into its config (unknown
//!   fields and wrong types rejected by path, so errors can say `framing.max_frame_bytes`),
//!   check it, and keep what it compiled (templates, conditions, the transform itself);
//! - **open** (at start, all the IO, once): bind listeners, read token and TLS files, open
//!   stores and consumers. It returns the component's task, not yet spawned, so the
//!   topology can bind everything before anything runs.
//!
//! Adding a component: its own file, one variant in its kind's enum, one arm in `build`
//! (its type name) and one in `open`; the compiler checks the `open` arm.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::api::Endpoint;
use crate::channel::BatchReceiver;
use crate::codec::DecodingConfig;
use crate::config::{deserialize, FieldError};
use crate::enrichment::{
    csv::CsvTableConfig, geoip::GeoipTableConfig, LoadError, Loader, TableHandle, Tables,
};
use crate::sinks::notify::NotifyConfig;
use crate::sinks::options::{StoreDefaults, StoreOptions};
use crate::sinks::{
    blackhole::BlackholeConfig, console::ConsoleConfig, file::FileConfig, file::FileSink,
    http::HttpSinkConfig, SinkContext, SinkError,
};
use crate::sinks::{clickhouse, elasticsearch, loki};
use crate::sources::{
    file::FileSourceConfig, http::HttpConfig, journald::JournaldConfig,
    kubernetes::KubernetesLogsConfig, sockets::Bound, sockets::Sockets, stdin::StdinConfig,
    tcp::TcpConfig, udp::UdpConfig, SourceContext, SourceError,
};
use crate::transforms::{
    dedupe::DedupeConfig, enrich::EnrichConfig, filter::FilterConfig,
    log_to_metric::LogToMetricConfig, multiline::MultilineTransformConfig, parse::ParseConfig,
    redact::RedactConfig, remap::RemapConfig, route::RouteConfig, sample::SampleConfig,
    throttle::ThrottleConfig, FunctionTransform, TransformContext,
};

/// A component's task, ready to spawn.
pub type Task<E> = Pin<Box<dyn Future<Output = Result<(), E>> + Send>>;

/// A built source.
#[derive(Debug, Clone)]
pub enum Source {
    Stdin(StdinConfig),
    File(FileSourceConfig),
    Tcp(TcpConfig),
    Udp(UdpConfig),
    Http(HttpConfig),
    #[cfg(feature = "kafka")]
    Kafka(crate::sources::kafka::KafkaSourceConfig),
    /// Boxed: its options hold the file source's, twice the size of any other source's.
    KubernetesLogs(Box<KubernetesLogsConfig>),
    Journald(JournaldConfig),
}

const SOURCE_TYPES: &str = "stdin, file, kubernetes_logs, journald, tcp, udp, http, kafka";

/// A source after the start's IO.
pub struct OpenedSource {
    /// The address a listening source bound (useful with port 0).
    pub address: Option<SocketAddr>,
    pub task: Task<SourceError>,
    /// The sockets it listens on, for the topology to keep across reloads.
    pub sockets: Vec<Bound>,
}

impl Source {
    pub(super) fn build(type_name: &str, table: toml::Table) -> Result<Self, FieldError> {
        Ok(match type_name {
            "stdin" => Self::Stdin(deserialize::<StdinConfig>(table)?.build()?),
            "file" => Self::File(deserialize::<FileSourceConfig>(table)?.build()?),
            "kubernetes_logs" => Self::KubernetesLogs(Box::new(
                deserialize::<KubernetesLogsConfig>(table)?.build()?,
            )),
            "journald" => Self::Journald(checked(table, JournaldConfig::validate)?),
            "tcp" => Self::Tcp(checked(table, TcpConfig::validate)?),
            "udp" => Self::Udp(checked(table, UdpConfig::validate)?),
            "http" => Self::Http(checked(table, HttpConfig::validate)?),
            #[cfg(feature = "kafka")]
            "kafka" => Self::Kafka(checked(
                table,
                crate::sources::kafka::KafkaSourceConfig::validate,
            )?),
            other => return Err(unknown_type(other, SOURCE_TYPES)),
        })
    }

    /// How the source turns a frame into fields; `None` for a source whose entries are
    /// not frames (journald reads journalctl's JSON into fields of its own).
    pub fn decoding(&self) -> Option<DecodingConfig> {
        match self {
            Self::Stdin(c) => Some(c.decoding),
            Self::File(c) => Some(c.decoding),
            Self::KubernetesLogs(c) => Some(c.decoding),
            Self::Journald(_) => None,
            Self::Tcp(c) => Some(c.decoding),
            Self::Udp(c) => Some(c.decoding),
            Self::Http(c) => Some(c.decoding),
            #[cfg(feature = "kafka")]
            Self::Kafka(c) => Some(c.decoding),
        }
    }

    /// Binds (or takes what the instance it replaces holds at the same address from
    /// `sockets`), reads token and TLS files, creates consumers: an error here fails the
    /// start.
    pub async fn open(
        self,
        ctx: SourceContext,
        sockets: &Sockets,
    ) -> Result<OpenedSource, SourceError> {
        let mut bound = Vec::new();
        let (address, task): (_, Task<SourceError>) = match self {
            Self::Stdin(c) => (None, Box::pin(c.run(ctx))),
            Self::File(c) => {
                // Creates the checkpoint directory: unwritable, the start fails.
                c.open(&ctx.id)?;
                (None, Box::pin(c.run(ctx)))
            }
            Self::KubernetesLogs(c) => {
                // Creates the checkpoint directory, resolves the API: errors fail the start.
                let opened = c.open(&ctx.id)?;
                (None, Box::pin(c.run(opened, ctx)))
            }
            Self::Journald(c) => {
                // Finds journalctl, creates the checkpoint directory: errors fail the start.
                let opened = c.open(&ctx.id)?;
                (None, Box::pin(c.run(opened, ctx)))
            }
            Self::Tcp(c) => {
                let listener = c.bind(sockets, &ctx.id).await?;
                bound.push(listener.listener.bound.clone());
                (
                    listener.listener.listener.local_addr().ok(),
                    Box::pin(c.run(listener, ctx)),
                )
            }
            Self::Udp(c) => {
                let (socket, socket_bound) = c.bind(sockets, &ctx.id).await?;
                bound.push(socket_bound);
                (socket.local_addr().ok(), Box::pin(c.run(socket, ctx)))
            }
            Self::Http(c) => {
                let listeners = c.bind(sockets, &ctx.id).await?;
                bound.extend(listeners.bound.iter().cloned());
                (
                    listeners.listener.local_addr().ok(),
                    Box::pin(c.run(listeners, ctx)),
                )
            }
            #[cfg(feature = "kafka")]
            Self::Kafka(c) => {
                // Creating the consumer (no connection yet) fails the start on a bad setup.
                let consumer = c.connect(&ctx.id)?;
                (None, Box::pin(c.run(consumer, ctx)))
            }
        };
        Ok(OpenedSource {
            address,
            task,
            sockets: bound,
        })
    }
}

/// A built transform: the function and its named outputs.
pub struct Transform {
    pub function: Box<dyn FunctionTransform>,
    /// Named outputs, in the order `Outputs::push_named` indexes them.
    pub outputs: Vec<String>,
}

const TRANSFORM_TYPES: &str =
    "parse, remap, enrich, filter, route, sample, throttle, dedupe, redact, multiline, log_to_metric";

impl Transform {
    pub(super) fn build(
        type_name: &str,
        table: toml::Table,
        id: &str,
        tables: &Tables,
    ) -> Result<Self, FieldError> {
        let ctx = TransformContext { id: id.to_string() };
        fn boxed<T: FunctionTransform>(t: T) -> Box<dyn FunctionTransform> {
            Box::new(t)
        }
        let (function, outputs) = match type_name {
            "parse" => {
                let outputs = ParseConfig::outputs().iter().map(|s| s.to_string());
                let c: ParseConfig = deserialize(table)?;
                (boxed(c.build(&ctx)?), outputs.collect())
            }
            "remap" => {
                let outputs = RemapConfig::outputs().iter().map(|s| s.to_string());
                let c: RemapConfig = deserialize(table)?;
                (boxed(c.build_with_tables(&ctx, tables)?), outputs.collect())
            }
            "redact" => (
                boxed(deserialize::<RedactConfig>(table)?.build(&ctx)?),
                vec![],
            ),
            "dedupe" => (
                boxed(deserialize::<DedupeConfig>(table)?.build(&ctx)?),
                vec![],
            ),
            "log_to_metric" => (
                boxed(deserialize::<LogToMetricConfig>(table)?.build(&ctx)?),
                vec![],
            ),
            "enrich" => (
                boxed(deserialize::<EnrichConfig>(table)?.build_with_tables(&ctx, tables)?),
                vec![],
            ),
            "filter" => (
                boxed(deserialize::<FilterConfig>(table)?.build(&ctx)?),
                vec![],
            ),
            "route" => {
                let c: RouteConfig = deserialize(table)?;
                (boxed(c.build(&ctx)?), c.outputs())
            }
            "sample" => (
                boxed(deserialize::<SampleConfig>(table)?.build(&ctx)?),
                vec![],
            ),
            "throttle" => (
                boxed(deserialize::<ThrottleConfig>(table)?.build(&ctx)?),
                vec![],
            ),
            "multiline" => (
                boxed(deserialize::<MultilineTransformConfig>(table)?.build_transform(&ctx)?),
                vec![],
            ),
            other => return Err(unknown_type(other, TRANSFORM_TYPES)),
        };
        Ok(Transform { function, outputs })
    }
}

/// A built enrichment table: its options, checked; the file is read at start.
#[derive(Debug, Clone)]
pub enum EnrichmentTable {
    Csv(CsvTableConfig),
    Geoip(GeoipTableConfig),
}

const ENRICHMENT_TABLE_TYPES: &str = "csv, geoip";

impl EnrichmentTable {
    pub(super) fn build(type_name: &str, table: toml::Table) -> Result<Self, FieldError> {
        Ok(match type_name {
            "csv" => Self::Csv(checked(table, CsvTableConfig::validate)?),
            "geoip" => Self::Geoip(checked(table, GeoipTableConfig::validate)?),
            other => return Err(unknown_type(other, ENRICHMENT_TABLE_TYPES)),
        })
    }

    /// Reads the file into `handle` (an error fails the start); returns the loader that
    /// reloads it.
    pub fn open(self, handle: &TableHandle) -> Result<Arc<dyn Loader>, LoadError> {
        let loader: Arc<dyn Loader> = match self {
            Self::Csv(c) => Arc::new(c),
            Self::Geoip(c) => Arc::new(c),
        };
        handle.open(&*loader)?;
        Ok(loader)
    }
}

/// A built sink.
#[derive(Debug, Clone)]
pub enum Sink {
    Console(ConsoleConfig),
    File(FileSink),
    Blackhole(BlackholeConfig),
    Http(HttpSinkConfig),
    Clickhouse(clickhouse::ClickhouseSinkConfig),
    Elasticsearch(elasticsearch::ElasticsearchSinkConfig),
    Loki(loki::LokiSinkConfig),
    Opentelemetry(crate::sinks::opentelemetry::OpentelemetrySinkConfig),
    #[cfg(feature = "store")]
    Store(crate::store::StoreConfig),
    /// `alertmanager`, `webhook`, `slack`, `pagerduty`: the alert notifiers.
    Notify(NotifyConfig),
    #[cfg(feature = "kafka")]
    Kafka(crate::sinks::kafka::KafkaSinkConfig),
    /// Boxed: its compiled key template makes it the largest variant by far.
    S3(Box<crate::sinks::s3::S3Sink>),
}

/// The most queue room requests in flight are given by default, whatever their concurrency
/// and size: a bound on the memory a sink's default queue can hold.
const MAX_IN_FLIGHT_BYTES: u64 = 64 * 1024 * 1024;

const SINK_TYPES: &str = "console, file, blackhole, http, opentelemetry, clickhouse, elasticsearch, loki, store, kafka, s3, alertmanager, webhook, slack, pagerduty";

/// A sink after the start's IO: its task and the API endpoints it serves (the store's
/// query, histogram, top and tail).
pub struct OpenedSink {
    pub task: Task<SinkError>,
    pub endpoints: Vec<Arc<dyn Endpoint>>,
}

impl Sink {
    pub(super) fn build(type_name: &str, table: toml::Table) -> Result<Self, FieldError> {
        let notify = |n: NotifyConfig| n.validate().map(|()| Self::Notify(n));
        Ok(match type_name {
            "console" => Self::Console(deserialize(table)?),
            "file" => Self::File(deserialize::<FileConfig>(table)?.build()?),
            "blackhole" => Self::Blackhole(deserialize(table)?),
            "http" => Self::Http(checked(table, HttpSinkConfig::validate)?),
            "clickhouse" => Self::Clickhouse(store_checked::<clickhouse::Clickhouse, _>(
                table,
                clickhouse::ClickhouseSinkConfig::validate,
            )?),
            "elasticsearch" => {
                Self::Elasticsearch(store_checked::<elasticsearch::Elasticsearch, _>(
                    table,
                    elasticsearch::ElasticsearchSinkConfig::validate,
                )?)
            }
            "loki" => Self::Loki(store_checked::<loki::Loki, _>(
                table,
                loki::LokiSinkConfig::validate,
            )?),
            "opentelemetry" => Self::Opentelemetry(checked(
                table,
                crate::sinks::opentelemetry::OpentelemetrySinkConfig::validate,
            )?),
            #[cfg(feature = "store")]
            "store" => Self::Store(checked(table, crate::store::StoreConfig::validate)?),
            "alertmanager" => notify(NotifyConfig::Alertmanager(deserialize(table)?))?,
            "webhook" => notify(NotifyConfig::Webhook(deserialize(table)?))?,
            "slack" => notify(NotifyConfig::Slack(deserialize(table)?))?,
            "pagerduty" => notify(NotifyConfig::Pagerduty(deserialize(table)?))?,
            #[cfg(feature = "kafka")]
            "kafka" => Self::Kafka(checked(
                table,
                crate::sinks::kafka::KafkaSinkConfig::validate,
            )?),
            "s3" => Self::S3(Box::new(
                deserialize::<crate::sinks::s3::S3SinkConfig>(table)?.build()?,
            )),
            other => return Err(unknown_type(other, SINK_TYPES)),
        })
    }

    /// Queue room this sink's requests in flight may hold: each keeps its events' room in
    /// the queue until answered (`sinks::batch::Gathered`), so a queue of the default size
    /// must hold `request.concurrency` requests besides the room to gather the next one, or
    /// the concurrency asked for is never reached. 0 for sinks that send one request at a
    /// time or release their room when they take a batch.
    pub fn in_flight_bytes(&self) -> u64 {
        let (concurrency, request_bytes) = match self {
            Self::Clickhouse(c) => (c.options.request.concurrency, c.options.batch_max_bytes),
            Self::Elasticsearch(c) => (c.options.request.concurrency, c.options.batch_max_bytes),
            Self::Opentelemetry(c) => (c.request.concurrency, c.batch_max_bytes),
            _ => return 0,
        };
        (concurrency as u64 * request_bytes as u64).min(MAX_IN_FLIGHT_BYTES)
    }

    /// Opens what the sink writes to when that is IO at start (the store's partitions);
    /// `streams_stop` ends the long-lived API streams it serves (live tail).
    pub fn open(
        self,
        rx: BatchReceiver,
        ctx: SinkContext,
        streams_stop: &CancellationToken,
    ) -> Result<OpenedSink, SinkError> {
        // Only the store serves endpoints, and a build may leave it out.
        #[cfg_attr(not(feature = "store"), allow(unused_mut))]
        let mut endpoints: Vec<Arc<dyn Endpoint>> = Vec::new();
        let task: Task<SinkError> = match self {
            Self::Console(c) => Box::pin(c.run(rx, ctx)),
            Self::File(c) => Box::pin(c.run(rx, ctx)),
            Self::Blackhole(c) => Box::pin(c.run(rx, ctx)),
            Self::Http(c) => {
                let client = c.client()?;
                Box::pin(c.run(client, rx, ctx))
            }
            Self::Clickhouse(c) => {
                let client = c.options.client()?;
                Box::pin(c.run(client, rx, ctx))
            }
            Self::Elasticsearch(c) => {
                let client = c.options.client()?;
                Box::pin(c.run(client, rx, ctx))
            }
            Self::Loki(c) => {
                let client = c.options.client()?;
                Box::pin(c.run(client, rx, ctx))
            }
            Self::Opentelemetry(c) => Box::pin(c.run(rx, ctx)),
            #[cfg(feature = "store")]
            Self::Store(c) => {
                let store = c
                    .open(&ctx.id)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                endpoints.push(Arc::new(crate::store::http::StoreEndpoint::new(
                    store.clone(),
                    streams_stop.clone(),
                )));
                Box::pin(c.run(store, rx, ctx))
            }
            Self::Notify(c) => Box::pin(c.run(rx, ctx)),
            #[cfg(feature = "kafka")]
            Self::Kafka(c) => Box::pin(c.run(rx, ctx)),
            Self::S3(c) => Box::pin(c.open()?.run(rx, ctx)),
        };
        #[cfg(not(feature = "store"))]
        let _ = streams_stop;
        Ok(OpenedSink { task, endpoints })
    }
}

/// Deserialises a config and runs its check.
fn checked<T: DeserializeOwned>(
    table: toml::Table,
    check: impl FnOnce(&T) -> Result<(), FieldError>,
) -> Result<T, FieldError> {
    let config = deserialize(table)?;
    check(&config)?;
    Ok(config)
}

/// `checked` for a sink flattening `StoreOptions`: serde names no field for an error inside
/// a flattened struct, so the shared options are read alone first (ignoring the rest).
fn store_checked<D: StoreDefaults, T: DeserializeOwned>(
    table: toml::Table,
    check: impl FnOnce(&T) -> Result<(), FieldError>,
) -> Result<T, FieldError> {
    deserialize::<StoreOptions<D>>(table.clone())?;
    checked(table, check)
}

fn unknown_type(kind: &str, known: &str) -> FieldError {
    FieldError::new(
        "type",
        format!("unknown type `{kind}` (expected one of: {known})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(toml: &str) -> Sink {
        let mut table: toml::Table = toml.parse().unwrap();
        let type_name = table.remove("type").unwrap();
        Sink::build(type_name.as_str().unwrap(), table).unwrap()
    }

    #[test]
    fn sinks_with_requests_in_flight_ask_queue_room_for_them() {
        const MIB: u64 = 1024 * 1024;
        let otlp = r#"type = "opentelemetry"
            uri = "http://127.0.0.1:4318/v1/logs""#;
        assert_eq!(sink(otlp).in_flight_bytes(), 4 * 4 * MIB);
        let otlp_8 = format!("{otlp}\nrequest = {{ concurrency = 8 }}\nbatch_max_bytes = 1048576");
        assert_eq!(sink(&otlp_8).in_flight_bytes(), 8 * MIB);
        let elasticsearch = r#"type = "elasticsearch"
            endpoint = "http://127.0.0.1:9200""#;
        assert_eq!(sink(elasticsearch).in_flight_bytes(), 4 * 10 * MIB);
        let clickhouse = r#"type = "clickhouse"
            endpoint = "http://127.0.0.1:8123"
            table = "logs"
            request = { concurrency = 64 }"#;
        assert_eq!(sink(clickhouse).in_flight_bytes(), MAX_IN_FLIGHT_BYTES);
        // One request at a time, or no room held while sending.
        let loki = r#"type = "loki"
            endpoint = "http://127.0.0.1:3100""#;
        assert_eq!(sink(loki).in_flight_bytes(), 0);
        assert_eq!(sink(r#"type = "blackhole""#).in_flight_bytes(), 0);
    }
}
