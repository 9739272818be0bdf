//! The HTTP floor: the least an actix-web server does for an ingest request. It reads the body
//! of any POST and answers 200, with no signature check and no publish, on as many workers as
//! the handler runs (`HANDLER_WORKERS`, default the number of CPUs). Its CPU per request under
//! the handler's load is what actix-web itself costs.

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;

/// Answers 200 to every request after reading its body.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:3190")]
    addr: String,
    /// Worker threads, as the handler's `HANDLER_WORKERS`.
    #[arg(long, env = "HANDLER_WORKERS")]
    workers: Option<usize>,
}

async fn ingest(body: web::Bytes) -> HttpResponse {
    std::hint::black_box(&body);
    HttpResponse::Ok().finish()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
    HttpServer::new(|| App::new().default_service(web::to(ingest)))
        .workers(workers)
        .bind(&args.addr)?
        .run()
        .await
}
