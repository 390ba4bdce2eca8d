//! The route guide, from a `.proto` file: `proto/route_guide.proto` is compiled by
//! `examples/build.rs` with `weft_codegen`, and `weft::include_proto!` brings in its messages,
//! the `RouteGuide` trait, `RouteGuideClient` and `RouteGuideServer`. The server runs on TCP on
//! 127.0.0.1 and the client calls every method: one of each RSocket interaction model.
//!
//! Run it with `cargo run -p weft-examples --example route_guide`.

/// The code generated from `proto/route_guide.proto` (package `routeguide`).
pub mod routeguide {
    weft::include_proto!("routeguide");
}

use futures_util::{Stream, StreamExt};
use routeguide::{Feature, Point, Rectangle, RouteGuide, RouteGuideClient, RouteGuideServer, RouteNote, RouteSummary};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use weft::{Client, Context, Server, Status, Streaming};

/// Notes left so far, by where they were left (latitude, longitude).
type Notes = Arc<Mutex<HashMap<(i32, i32), Vec<RouteNote>>>>;

/// The server's side: a few known features, the notes left so far, and where reported positions
/// go (so that `main` can show one arrived).
struct Guide {
    features: Vec<Feature>,
    notes: Notes,
    positions: mpsc::UnboundedSender<Point>,
}

fn point(latitude: i32, longitude: i32) -> Point {
    Point { latitude, longitude }
}

fn feature(name: &str, latitude: i32, longitude: i32) -> Feature {
    Feature { name: name.into(), location: Some(point(latitude, longitude)) }
}

impl RouteGuide for Guide {
    async fn get_feature(&self, _ctx: Context, request: Point) -> Result<Feature, Status> {
        let found = self.features.iter().find(|f| f.location.as_ref() == Some(&request));
        // As in the classic route guide: no feature here is a feature without a name.
        Ok(found.cloned().unwrap_or(Feature { name: String::new(), location: Some(request) }))
    }

    async fn list_features(
        &self,
        _ctx: Context,
        request: Rectangle,
    ) -> Result<impl Stream<Item = Result<Feature, Status>> + Send + 'static, Status> {
        let (Some(lo), Some(hi)) = (request.lo, request.hi) else {
            return Err(Status::invalid_argument("a rectangle needs both corners"));
        };
        let inside = move |p: &Point| {
            (lo.latitude.min(hi.latitude)..=lo.latitude.max(hi.latitude)).contains(&p.latitude)
                && (lo.longitude.min(hi.longitude)..=lo.longitude.max(hi.longitude)).contains(&p.longitude)
        };
        let found: Vec<_> =
            self.features.iter().filter(|f| f.location.as_ref().is_some_and(inside)).cloned().map(Ok).collect();
        Ok(futures_util::stream::iter(found))
    }

    async fn record_route(&self, _ctx: Context, mut request: Streaming<Point>) -> Result<RouteSummary, Status> {
        let start = Instant::now();
        let mut summary = RouteSummary::default();
        let mut previous: Option<Point> = None;
        while let Some(p) = request.message().await? {
            summary.point_count += 1;
            if self.features.iter().any(|f| f.location.as_ref() == Some(&p)) {
                summary.feature_count += 1;
            }
            if let Some(prev) = previous {
                summary.distance += distance(&prev, &p);
            }
            previous = Some(p);
        }
        summary.elapsed_time = start.elapsed().as_secs() as i32;
        Ok(summary)
    }

    async fn route_chat(
        &self,
        _ctx: Context,
        request: Streaming<RouteNote>,
    ) -> Result<impl Stream<Item = Result<RouteNote, Status>> + Send + 'static, Status> {
        // For each note: answer with the notes left earlier at the same place, then keep it.
        let notes = Arc::clone(&self.notes);
        Ok(request.flat_map(move |note| {
            let replies: Vec<Result<RouteNote, Status>> = match note {
                Ok(note) => {
                    let at = note.location.unwrap_or_default();
                    let mut notes = notes.lock().unwrap_or_else(|e| e.into_inner());
                    let here = notes.entry((at.latitude, at.longitude)).or_default();
                    let earlier = here.iter().cloned().map(Ok).collect();
                    here.push(note);
                    earlier
                }
                Err(status) => vec![Err(status)],
            };
            futures_util::stream::iter(replies)
        }))
    }

    async fn report_position(&self, _ctx: Context, request: Point) {
        let _ = self.positions.send(request);
    }
}

/// The distance between two points in metres (haversine), as the classic route guide computes it.
fn distance(a: &Point, b: &Point) -> i32 {
    const COORD_FACTOR: f64 = 1e7;
    const EARTH_RADIUS_M: f64 = 6_371_000.0;
    let (lat1, lat2) =
        ((a.latitude as f64 / COORD_FACTOR).to_radians(), (b.latitude as f64 / COORD_FACTOR).to_radians());
    let (lon1, lon2) =
        ((a.longitude as f64 / COORD_FACTOR).to_radians(), (b.longitude as f64 / COORD_FACTOR).to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    (2.0 * EARTH_RADIUS_M * h.sqrt().atan2((1.0 - h).sqrt())) as i32
}

fn show(p: &Point) -> String {
    format!("({:.4}, {:.4})", p.latitude as f64 / 1e7, p.longitude as f64 / 1e7)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Bounded: an example that hangs is worse than one that fails.
    tokio::time::timeout(Duration::from_secs(30), run()).await??;
    Ok(())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let features = vec![
        feature("Patriots Path, Mendham, NJ 07945, USA", 407_838_351, -746_143_763),
        feature("101 New Jersey 10, Whippany, NJ 07981, USA", 408_122_808, -743_999_179),
        feature("U.S. 6, Shohola, PA 18458, USA", 413_628_156, -749_015_468),
        feature("5 Conners Road, Kingston, NY 12401, USA", 419_999_544, -740_371_136),
    ];
    let (positions_tx, mut positions) = mpsc::unbounded_channel();
    let guide = Guide { features: features.clone(), notes: Arc::default(), positions: positions_tx };

    // The server: RouteGuideServer (generated from the .proto) wraps our implementation.
    let server = Server::builder().add_service(RouteGuideServer::new(guide)).build();
    let running = server.bind("127.0.0.1:0").await?;
    let addr = running.local_addr();
    println!("Route guide listening on {addr}.");
    let client = RouteGuideClient::new(Client::connect(addr).await?);
    println!("Client connected.\n");

    println!("1. GetFeature (request/response): what is at a point?");
    for p in [point(409_146_138, -746_188_906), point(407_838_351, -746_143_763)] {
        let found = client.get_feature(p).await?;
        let name = if found.name.is_empty() { "nothing known" } else { &found.name };
        println!("   at {}: {name}", show(&p));
    }
    println!();

    println!("2. ListFeatures (request/stream): every feature in a rectangle, as a stream.");
    let rect = Rectangle { lo: Some(point(400_000_000, -750_000_000)), hi: Some(point(415_000_000, -730_000_000)) };
    let mut found = client.list_features(rect).await?;
    while let Some(f) = found.message().await? {
        println!("   {} at {}", f.name, show(&f.location.unwrap_or_default()));
    }
    println!("   (the stream ended)\n");

    println!("3. RecordRoute (client streaming): send the points of a route, get one summary.");
    let route: Vec<Point> =
        features.iter().filter_map(|f| f.location).chain([point(410_000_000, -745_000_000)]).collect();
    println!("   sending {} points", route.len());
    let summary = client.record_route(futures_util::stream::iter(route)).await?;
    println!(
        "   summary: {} points, {} known features, {} km\n",
        summary.point_count,
        summary.feature_count,
        summary.distance / 1000
    );

    println!("4. RouteChat (channel): leave notes; each answer is a note left at the same place before.");
    let here = point(0, 0);
    let there = point(0, 10_000_000);
    let notes =
        [(here, "first message"), (there, "second message"), (here, "third message"), (there, "fourth message")]
            .map(|(p, text)| RouteNote { location: Some(p), message: text.into() });
    let mut answers = client.route_chat(futures_util::stream::iter(notes)).await?;
    while let Some(note) = answers.message().await? {
        println!("   earlier at {}: {:?}", show(&note.location.unwrap_or_default()), note.message);
    }
    println!();

    println!("5. ReportPosition (fire-and-forget): report where we are; the server sends nothing back.");
    client.report_position(point(407_838_351, -746_143_763)).await?;
    let got = positions.recv().await.ok_or("the server stopped")?;
    println!("   the server received a position: {}\n", show(&got));

    println!("6. errors: a handler's Err(Status) reaches the client with its code.");
    match client.list_features(Rectangle { lo: None, hi: None }).await {
        Ok(mut s) => match s.message().await {
            Err(status) => println!("   error {}: {}\n", status.code(), status.message()),
            Ok(f) => println!("   unexpected: {f:?}\n"),
        },
        Err(status) => println!("   error {}: {}\n", status.code(), status.message()),
    }

    running.shutdown().await;
    println!("Server shut down. Bye!");
    Ok(())
}
