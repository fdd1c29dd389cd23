//! The HTTP surface: JSON API under `/api/v1`, the page at `/`, and the ops endpoints.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::NaiveDate;
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::figures::{FunnelReport, funnel_report, local_today};
use crate::source::{DashboardSource, HealthView, LiveView, StoreView};

/// Longest range `GET /api/v1/funnel?from=&to=` accepts, in days.
pub const MAX_RANGE_DAYS: i64 = 92;

const OPENAPI: &str = include_str!("../openapi.yaml");
const PAGE: &str = include_str!("../assets/index.html");

/// How the dashboard is served.
#[derive(Clone, Debug, Default)]
pub struct DashboardOptions {
    /// When set, every route but `/healthz` needs `Authorization: Bearer <token>` or
    /// `?token=<token>`.
    pub auth_token: Option<String>,
}

#[derive(Clone)]
struct AppState {
    source: Arc<dyn DashboardSource>,
}

/// The whole dashboard as one router; the caller binds and serves it.
pub fn router(source: Arc<dyn DashboardSource>, options: DashboardOptions) -> Router {
    let state = AppState { source };
    let guarded = Router::new()
        .route("/", get(page))
        .route("/api/v1/store", get(store))
        .route("/api/v1/funnel", get(funnel))
        .route("/api/v1/live", get(live))
        .route("/api/v1/health", get(health))
        .route("/api/v1/openapi.yaml", get(openapi))
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(state);
    let guarded = match options.auth_token {
        Some(token) => {
            let token: Arc<[u8]> = token.into_bytes().into();
            guarded.layer(middleware::from_fn(move |request: Request, next: Next| {
                let token = token.clone();
                async move { require_token(&token, request, next).await }
            }))
        }
        None => guarded,
    };
    Router::new().route("/healthz", get(healthz)).merge(guarded)
}

/// A JSON error that names what was wrong and how to fix it.
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    /// Machine-readable kind: `bad_parameter`, `unauthorized`, `not_found`, `internal`.
    pub error: &'static str,
    /// The query parameter at fault, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    pub message: String,
    pub fix: String,
}

impl ApiError {
    fn bad_parameter(parameter: &str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: "bad_parameter",
            parameter: Some(parameter.to_owned()),
            message: message.into(),
            fix: fix.into(),
        }
    }

    fn internal(error: anyhow::Error) -> Self {
        tracing::error!(error = format!("{error:#}"), "Dashboard source failed");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "internal",
            parameter: None,
            message: format!("{error:#}"),
            fix: "see the agent's log; retry later".to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (status, axum::Json(self)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

async fn require_token(token: &[u8], request: Request, next: Next) -> Response {
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().as_bytes().to_vec());
    let from_query = Query::<Vec<(String, String)>>::try_from_uri(request.uri())
        .ok()
        .and_then(|Query(pairs)| pairs.into_iter().find(|(k, _)| k == "token"))
        .map(|(_, v)| v.into_bytes());
    let matches = |given: &[u8]| -> bool { bool::from(given.ct_eq(token)) };
    let ok =
        from_header.as_deref().is_some_and(matches) || from_query.as_deref().is_some_and(matches);
    if ok {
        next.run(request).await
    } else {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "unauthorized",
            parameter: None,
            message: "this dashboard needs an access token".to_owned(),
            fix: "send `Authorization: Bearer <token>` or add `?token=<token>` to the URL"
                .to_owned(),
        }
        .into_response()
    }
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
        OPENAPI,
    )
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        error: "not_found",
        parameter: None,
        message: "no such endpoint".to_owned(),
        fix: "see /api/v1/openapi.yaml for the endpoints".to_owned(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    let source = state.source.clone();
    let ready = blocking(move || Ok(source.health().ready))
        .await
        .unwrap_or(false);
    if ready {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let source = state.source.clone();
    let text =
        blocking(move || crate::metrics::encode_metrics(&source.metrics(), &source.health()))
            .await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// Runs a source call off the async runtime: `days` and `windows` may read the disk.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::internal),
        Err(join) => Err(ApiError::internal(anyhow::anyhow!(
            "dashboard source call panicked: {join}"
        ))),
    }
}

type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Checks that only `allowed` parameters (and `token`) appear, each at most once.
fn parameters(params: Params, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let Query(pairs) = params.map_err(|e| {
        ApiError::bad_parameter(
            "query",
            format!("the query string does not parse: {e}"),
            "use key=value pairs separated by &, percent-encoded",
        )
    })?;
    let mut seen: Vec<&str> = Vec::new();
    for (key, _) in &pairs {
        if key == "token" {
            continue;
        }
        if !allowed.contains(&key.as_str()) {
            let fix = if allowed.is_empty() {
                "this endpoint takes no parameters".to_owned()
            } else {
                format!("remove it; this endpoint takes: {}", allowed.join(", "))
            };
            return Err(ApiError::bad_parameter(
                key,
                format!("unknown parameter `{key}`"),
                fix,
            ));
        }
        if seen.contains(&key.as_str()) {
            return Err(ApiError::bad_parameter(
                key,
                format!("`{key}` is given more than once"),
                "give it once",
            ));
        }
        seen.push(key);
    }
    Ok(pairs.into_iter().filter(|(k, _)| k != "token").collect())
}

fn parse_date(parameter: &str, value: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
        ApiError::bad_parameter(
            parameter,
            format!("`{parameter}={value}` is not a calendar date"),
            format!("use YYYY-MM-DD, e.g. {parameter}=2026-11-23 (a local date in the store's time zone)"),
        )
    })
}

/// The local date range a funnel query asks for: `date`, or `from` and `to`, or today.
pub fn resolve_range(
    pairs: &[(String, String)],
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let (from, to) = match (get("date"), get("from"), get("to")) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(ApiError::bad_parameter(
                "date",
                "`date` cannot be combined with `from`/`to`",
                "give either date=YYYY-MM-DD or from=YYYY-MM-DD&to=YYYY-MM-DD",
            ));
        }
        (Some(date), None, None) => {
            let date = parse_date("date", date)?;
            (date, date)
        }
        (None, Some(from), Some(to)) => (parse_date("from", from)?, parse_date("to", to)?),
        (None, Some(_), None) => {
            return Err(ApiError::bad_parameter(
                "to",
                "`from` needs `to`",
                "add to=YYYY-MM-DD (inclusive), or use date=YYYY-MM-DD for one day",
            ));
        }
        (None, None, Some(_)) => {
            return Err(ApiError::bad_parameter(
                "from",
                "`to` needs `from`",
                "add from=YYYY-MM-DD (inclusive), or use date=YYYY-MM-DD for one day",
            ));
        }
        (None, None, None) => (today, today),
    };
    if from > to {
        return Err(ApiError::bad_parameter(
            "to",
            format!("`to` ({to}) is before `from` ({from})"),
            "give to on or after from",
        ));
    }
    if to > today {
        let parameter = if get("date").is_some() { "date" } else { "to" };
        return Err(ApiError::bad_parameter(
            parameter,
            format!("{to} is in the future: today is {today} in the store's time zone"),
            format!("ask for {today} or an earlier date"),
        ));
    }
    if (to - from).num_days() >= MAX_RANGE_DAYS {
        return Err(ApiError::bad_parameter(
            "from",
            format!("the range {from}..{to} is longer than {MAX_RANGE_DAYS} days"),
            format!("ask for at most {MAX_RANGE_DAYS} days at a time"),
        ));
    }
    Ok((from, to))
}

async fn store(
    State(state): State<AppState>,
    params: Params,
) -> Result<axum::Json<StoreView>, ApiError> {
    parameters(params, &[])?;
    let source = state.source.clone();
    Ok(axum::Json(blocking(move || Ok(source.store())).await?))
}

async fn funnel(
    State(state): State<AppState>,
    params: Params,
) -> Result<axum::Json<FunnelReport>, ApiError> {
    let pairs = parameters(params, &["date", "from", "to"])?;
    let source = state.source.clone();
    let today = {
        let source = source.clone();
        blocking(move || Ok(local_today(source.store().timezone, source.live().now))).await?
    };
    let (from, to) = resolve_range(&pairs, today)?;
    let report = blocking(move || funnel_report(source.as_ref(), from, to)).await?;
    Ok(axum::Json(report))
}

/// `GET /api/v1/live`.
#[derive(Debug, Serialize)]
pub struct LiveResponse {
    #[serde(flatten)]
    pub live: LiveView,
    /// Local date of `now`: what the door counts since opening refer to.
    pub local_date: NaiveDate,
    /// door in − out since the day began (can run negative when the sensor miscounts).
    pub door_occupancy: Option<i64>,
}

async fn live(
    State(state): State<AppState>,
    params: Params,
) -> Result<axum::Json<LiveResponse>, ApiError> {
    parameters(params, &[])?;
    let source = state.source.clone();
    let (live, tz) = blocking(move || Ok((source.live(), source.store().timezone))).await?;
    let door_occupancy = match (live.door_in_today, live.door_out_today) {
        (Some(i), Some(o)) => Some(i as i64 - o as i64),
        _ => None,
    };
    Ok(axum::Json(LiveResponse {
        local_date: local_today(tz, live.now),
        door_occupancy,
        live,
    }))
}

async fn health(
    State(state): State<AppState>,
    params: Params,
) -> Result<axum::Json<HealthView>, ApiError> {
    parameters(params, &[])?;
    let source = state.source.clone();
    Ok(axum::Json(blocking(move || Ok(source.health())).await?))
}
