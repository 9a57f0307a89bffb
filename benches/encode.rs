//! Encode throughput: raw GetFindings page JSON to Parquet bytes, per finding, on the emulator's
//! realistic mixed findings, page parsing included (benches/pyarrow_encode.py does the same work
//! with pyarrow). Run with `cargo bench --bench encode`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sechub_export::emulator::generate::Generator;
use sechub_export::encode::asff::ASFF;
use sechub_export::encode::{encode_pages, page_batch, Compression, Format, PartWriter, RowOrigin};
use sechub_export::source::Page;

/// `count` generated findings as pages of 100, exactly as GetFindings bodies.
fn bodies(count: u64) -> Vec<String> {
    let generator = Generator::default();
    (0..count)
        .step_by(100)
        .enumerate()
        .map(|(n, start)| {
            let findings: Vec<String> = (start..(start + 100).min(count))
                .map(|i| generator.finding(i))
                .collect();
            format!(
                "{{\"Findings\":[{}],\"NextToken\":\"t{n}\"}}",
                findings.join(",")
            )
        })
        .collect()
}

/// Page bodies as the SDK hands them over, split into findings (inside the timed loop).
fn parse(bodies: &[String]) -> impl Iterator<Item = Page> + '_ {
    bodies
        .iter()
        .enumerate()
        .map(|(n, body)| Page::parse(n as u64 + 1, body.clone(), 0).expect("valid page"))
}

/// The pipeline's layout: one thread turns pages into Arrow batches while another encodes and
/// compresses them into Parquet (the default on a 2-core machine).
fn encode_two_threads(bodies: &[String], codec: Compression) -> Vec<u8> {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(32);
        scope.spawn(move || {
            for page in parse(bodies) {
                tx.send(page_batch(&ASFF, &page, &RowOrigin::job("bench")))
                    .expect("writer alive");
            }
        });
        let mut writer = PartWriter::new(ASFF.table(), codec).expect("writer");
        for batch in rx {
            writer.write(&batch).expect("encodes");
        }
        writer.finish().expect("closes")
    })
}

fn encode(c: &mut Criterion) {
    let bodies = bodies(4_000);
    let findings: u64 = parse(&bodies).map(|p| p.len() as u64).sum();
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(findings));
    group.sample_size(10);
    for (name, codec) in [("zstd", Compression::Zstd), ("snappy", Compression::Snappy)] {
        group.bench_function(format!("{name}/one-thread"), |b| {
            b.iter(|| {
                let pages: Vec<Page> = parse(&bodies).collect();
                encode_pages(&ASFF, &pages, &RowOrigin::job("bench"), codec).expect("encodes")
            })
        });
        group.bench_function(format!("{name}/two-threads"), |b| {
            b.iter(|| encode_two_threads(&bodies, codec))
        });
    }
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
