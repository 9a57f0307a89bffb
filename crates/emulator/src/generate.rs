//! Deterministic, realistic ASFF findings: finding `i` of seed `s` is always the same text, made
//! on demand, so a million-finding data set costs no memory.

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

/// Products the generator imitates.
pub const PRODUCTS: &[&str] = &[
    "GuardDuty",
    "Inspector",
    "Security Hub",
    "Macie",
    "IAM Access Analyzer",
    "Acme Scanner",
];
const REGIONS: &[&str] = &["us-east-1", "eu-west-1", "ap-southeast-2"];
const SEVERITIES: &[(&str, u32, u32, u32)] = &[
    // label, weight %, normalized low, high
    ("INFORMATIONAL", 20, 0, 0),
    ("LOW", 30, 1, 39),
    ("MEDIUM", 30, 40, 69),
    ("HIGH", 15, 70, 89),
    ("CRITICAL", 5, 90, 100),
];

/// A generated data set: `count` findings from `seed`, timestamps before `base_time`.
#[derive(Debug, Clone)]
pub struct Generator {
    /// Same seed, same findings.
    pub seed: u64,
    /// Timestamps are spread before this moment.
    pub base_time: DateTime<Utc>,
    /// The account and Region of every finding (one account's hub in one Region); `None`:
    /// findings of five accounts in three Regions, as an aggregating administrator sees them.
    pub home: Option<(String, String)>,
    /// Findings updated in the day before a moment, per mille (`--recent-percent`: the
    /// changes a daily feed run reads): their `UpdatedAt` falls in that day.
    pub recent: Option<(u32, DateTime<Utc>)>,
    /// Every tenth finding (index 10k + 1) reuses the `Id` of the finding before it under
    /// another product (another `ProductArn`), as two products may (`--shared-ids`): a finding
    /// is identified by `Id` and `ProductArn` together.
    pub shared_ids: bool,
}

impl Default for Generator {
    fn default() -> Self {
        Generator {
            seed: 1,
            base_time: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
            home: None,
            recent: None,
            shared_ids: false,
        }
    }
}

/// Controls whose findings the "Security Hub" product imitates.
const CONTROLS: &[&str] = &[
    "EC2.2",
    "EC2.19",
    "S3.1",
    "S3.8",
    "IAM.1",
    "IAM.6",
    "Config.1",
    "CloudTrail.1",
    "Lambda.3",
    "RDS.2",
    "KMS.4",
    "GuardDuty.1",
];

/// SplitMix64: a well-mixed 64-bit value of `x`.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An Id shaped as each product's are: a product-specific ARN ending in random hex (a control
/// finding: the control, then a UUID), unique per seed and index, uncorrelated with the order
/// pages are served in.
fn finding_id(product: &str, region: &str, account: &str, seed: u64, index: u64) -> String {
    let high = mix(seed ^ mix(index));
    let low = mix(high ^ index);
    let hex = format!("{high:016x}{low:016x}");
    match product {
        "Security Hub" => format!(
            "arn:aws:securityhub:{region}:{account}:security-control/{}/finding/{}-{}-{}-{}-{}",
            CONTROLS[(low % CONTROLS.len() as u64) as usize],
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        ),
        "GuardDuty" => format!(
            "arn:aws:guardduty:{region}:{account}:detector/d{:x}/finding/{hex}",
            index % 7
        ),
        "Inspector" => format!("arn:aws:inspector2:{region}:{account}:finding/{hex}"),
        "Macie" => format!("arn:aws:macie2:{region}:{account}:finding/{hex}"),
        "IAM Access Analyzer" => format!(
            "arn:aws:access-analyzer:{region}:{account}:analyzer/ConsoleAnalyzer/finding/{hex}"
        ),
        _ => format!("acme:{account}:finding/{hex}"),
    }
}

fn pick<'a, T>(rng: &mut SmallRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// A timestamp in one of the forms the API carries.
fn stamp(rng: &mut SmallRng, time: DateTime<Utc>) -> String {
    match rng.random_range(0..10) {
        0 => time.to_rfc3339_opts(SecondsFormat::Secs, true),
        1 => time.to_rfc3339_opts(SecondsFormat::Nanos, true),
        2 => time
            .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
            .to_rfc3339_opts(SecondsFormat::Millis, false),
        3 => time.to_rfc3339_opts(SecondsFormat::Micros, true),
        _ => time.to_rfc3339_opts(SecondsFormat::Millis, true),
    }
}

impl Generator {
    /// Finding `index`, as the compact JSON text the service would send.
    pub fn finding(&self, index: u64) -> String {
        self.finding_value(index).to_string()
    }

    /// Whether finding `index` shares the `Id` of finding `index - 1` (see [`Generator::shared_ids`]).
    fn shares_id(&self, index: u64) -> bool {
        self.shared_ids && index % 10 == 1
    }

    /// The dice of finding `index`, after its product, Region and account were drawn.
    fn head(&self, index: u64) -> (SmallRng, &'static str, &str, String) {
        let mut rng =
            SmallRng::seed_from_u64(self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index);
        let mut product = PRODUCTS[rng.random_range(0..PRODUCTS.len())];
        if self.shares_id(index) {
            // Another product than the finding whose Id it shares (so another ProductArn).
            let (_, previous, ..) = self.head(index - 1);
            if previous == product {
                let at = PRODUCTS.iter().position(|p| *p == product).unwrap_or(0);
                product = PRODUCTS[(at + 1) % PRODUCTS.len()];
            }
        }
        let mut region = *pick(&mut rng, REGIONS);
        let mut account = format!(
            "{:012}",
            111_111_111_111u64 * (1 + rng.random_range(0..5u64)) % 1_000_000_000_000
        );
        if let Some((home_account, home_region)) = &self.home {
            account = home_account.clone();
            region = home_region.as_str();
        }
        (rng, product, region, account)
    }

    /// The `Id` of finding `index`, without building the finding (filters on `Id` alone).
    pub fn finding_id(&self, index: u64) -> String {
        if self.shares_id(index) {
            return self.finding_id(index - 1);
        }
        let (_, product, region, account) = self.head(index);
        finding_id(product, region, &account, self.seed, index)
    }

    /// The creation and update times of finding `index`, the next draws after its head.
    fn times(&self, rng: &mut SmallRng, index: u64) -> (DateTime<Utc>, DateTime<Utc>) {
        let created = self.base_time - Duration::seconds(rng.random_range(3_600..86 * 86_400));
        let mut updated = created + Duration::seconds(rng.random_range(0..3 * 86_400));
        if let Some((per_mille, until)) = self.recent {
            let dice = mix(self.seed ^ mix(index ^ 0x5EED));
            if dice % 1_000 < u64::from(per_mille) {
                updated = until - Duration::seconds(((dice >> 16) % 86_400) as i64);
            }
        }
        (created, updated)
    }

    /// The `UpdatedAt` of finding `index`, without building the finding (filters on `Id` and
    /// `UpdatedAt` alone: every export's window).
    pub fn updated_at(&self, index: u64) -> DateTime<Utc> {
        let (mut rng, ..) = self.head(index);
        self.times(&mut rng, index).1
    }

    /// Finding `index` as a JSON value.
    pub fn finding_value(&self, index: u64) -> Value {
        let (mut rng, product, region, account) = self.head(index);
        let (created, updated) = self.times(&mut rng, index);
        let roll = rng.random_range(0..100);
        let mut acc = 0;
        let &(label, _, low, high) = SEVERITIES
            .iter()
            .find(|(_, weight, _, _)| {
                acc += weight;
                roll < acc
            })
            .unwrap_or(&SEVERITIES[0]);
        let normalized = rng.random_range(low..=high);
        let workflow = *pick(
            &mut rng,
            &["NEW", "NEW", "NEW", "NOTIFIED", "RESOLVED", "SUPPRESSED"],
        );
        let record_state = if rng.random_range(0..5) == 0 {
            "ARCHIVED"
        } else {
            "ACTIVE"
        };
        let (company, product_arn_tail) = match product {
            "Acme Scanner" => ("Acme Corp", format!("product/{account}/default")),
            "Security Hub" => ("AWS", "product/aws/securityhub".into()),
            other => (
                "Amazon",
                format!(
                    "product/aws/{}",
                    other.to_ascii_lowercase().replace(' ', "-")
                ),
            ),
        };
        let product_arn = format!("arn:aws:securityhub:{region}::{product_arn_tail}");
        let id = self.finding_id(index);
        let mut finding = json!({
            "SchemaVersion": "2018-10-08",
            "Id": id,
            "ProductArn": product_arn,
            "ProductName": product,
            "CompanyName": company,
            "Region": region,
            "AwsAccountId": account,
            "CreatedAt": stamp(&mut rng, created),
            "UpdatedAt": stamp(&mut rng, updated),
            "FirstObservedAt": stamp(&mut rng, created),
            "LastObservedAt": stamp(&mut rng, updated),
            "Severity": {"Label": label, "Normalized": normalized, "Original": label},
            "Workflow": {"Status": workflow},
            "WorkflowState": "NEW",
            "RecordState": record_state,
            "ProductFields": {
                "aws/securityhub/FindingId": id,
                "aws/securityhub/ProductName": product,
                "aws/securityhub/CompanyName": company,
            },
        });
        let body = finding.as_object_mut().expect("object");
        add_product_fields(&mut rng, product, region, &account, index, body);
        pad(&mut rng, index, body);
        finding
    }
}

fn resource(kind: &str, id: String, region: &str, details: Value) -> Value {
    json!({"Type": kind, "Id": id, "Partition": "aws", "Region": region, "Details": details})
}

/// Product-specific fields: generator, types, title, resources, compliance, vulnerabilities.
fn add_product_fields(
    rng: &mut SmallRng,
    product: &str,
    region: &str,
    account: &str,
    index: u64,
    f: &mut Map<String, Value>,
) {
    let instance = format!("i-{:017x}", rng.random::<u64>() >> 4);
    let bucket = format!("data-{}-{index}", &account[..4]);
    let (generator, types, title, description, resources) = match product {
        "GuardDuty" => (
            format!("arn:aws:guardduty:{region}:{account}:detector/d{:x}", index % 7),
            vec!["TTPs/Command and Control/Backdoor:EC2-C&CActivity.B".to_string()],
            format!("EC2 instance {instance} is communicating with a known command and control server."),
            "The EC2 instance is querying a domain name associated with a known command and control server.".to_string(),
            vec![resource("AwsEc2Instance", format!("arn:aws:ec2:{region}:{account}:instance/{instance}"), region,
                json!({"AwsEc2Instance": {"Type": "t3.large", "ImageId": "ami-0abcdef1234567890", "IpV4Addresses": ["10.0.1.12"], "LaunchedAt": "2026-09-01T10:00:00.000Z"}}))],
        ),
        "Inspector" => {
            let cve = format!("CVE-2026-{:05}", rng.random_range(1000..60000));
            f.insert("Vulnerabilities".into(), json!([{"Id": cve, "VulnerablePackages": [{"Name": "openssl", "Version": "3.0.2", "Epoch": "0", "Release": "1.el9", "Architecture": "X86_64", "PackageManager": "OS"}],
                "Cvss": [{"Version": "3.1", "BaseScore": 7.5, "BaseVector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", "Source": "NVD"}],
                "Vendor": {"Name": "NVD", "Url": format!("https://nvd.nist.gov/vuln/detail/{cve}"), "VendorSeverity": "HIGH"}, "FixAvailable": "YES", "ExploitAvailable": "NO"}]));
            (
                format!("arn:aws:inspector2:{region}:{account}:finding/{index:x}"),
                vec!["Software and Configuration Checks/Vulnerabilities/CVE".to_string()],
                format!("{cve} - openssl"),
                "A flaw in openssl allows a remote attacker to cause a denial of service.".to_string(),
                vec![resource("AwsEc2Instance", format!("arn:aws:ec2:{region}:{account}:instance/{instance}"), region, json!({}))],
            )
        }
        "Security Hub" => {
            let control = *pick(rng, &["S3.8", "IAM.6", "EC2.19", "CloudTrail.1", "RDS.3"]);
            let status = *pick(rng, &["PASSED", "FAILED", "FAILED", "WARNING", "NOT_AVAILABLE"]);
            f.insert("Compliance".into(), json!({"Status": status, "SecurityControlId": control,
                "AssociatedStandards": [{"StandardsId": "standards/aws-foundational-security-best-practices/v/1.0.0"}]}));
            (
                format!("security-control/{control}"),
                vec!["Software and Configuration Checks/Industry and Regulatory Standards".to_string()],
                format!("{control} control check"),
                format!("This control checks configuration {control}."),
                vec![resource("AwsS3Bucket", format!("arn:aws:s3:::{bucket}"), region, json!({"AwsS3Bucket": {"OwnerId": account, "CreatedAt": "2025-01-01T00:00:00.000Z"}}))],
            )
        }
        "Macie" => (
            format!("arn:aws:macie:{region}:{account}:classification-job/{index:x}"),
            vec!["Sensitive Data Identifications/PII/SensitiveData:S3Object-Personal".to_string()],
            "The S3 object contains personal information.".to_string(),
            "The object contains names, addresses and credit card numbers.".to_string(),
            vec![resource("AwsS3Bucket", format!("arn:aws:s3:::{bucket}"), region, json!({})),
                 resource("AwsS3Object", format!("arn:aws:s3:::{bucket}/customers/{index}.csv"), region, json!({}))],
        ),
        "IAM Access Analyzer" => (
            format!("arn:aws:access-analyzer:{region}:{account}:analyzer/ConsoleAnalyzer"),
            vec!["Software and Configuration Checks/AWS Security Best Practices/External Access Granted".to_string()],
            format!("AwsS3Bucket/arn:aws:s3:::{bucket}/ allows cross-account access"),
            "The bucket policy grants access to an external principal.".to_string(),
            vec![resource("AwsS3Bucket", format!("arn:aws:s3:::{bucket}"), region, json!({}))],
        ),
        _ => {
            f.insert("UserDefinedFields".into(), json!({"team": "plateforme-sécurité", "ticket": format!("SEC-{index}"), "owner:email": "sec@example.com"}));
            f.insert("FutureAsffField".into(), json!({"nested": [1, {"deep": ["x"]}], "note": "a field newer than the SDK"}));
            (
                format!("acme-scanner/rule-{}", index % 50),
                vec!["Unusual Behaviors/Application".to_string(), "Effects/Data Exposure".to_string()],
                "Übermäßige Berechtigungen — 過剰な権限 😀 détecté".to_string(),
                "Custom finding with unicode: naïve café, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢, emoji 🚨, quotes \"x\" and \\ backslash.".to_string(),
                vec![resource("Other", format!("acme:{account}:asset/{index}"), region, json!({"Other": {"asset": "web-01"}}))],
            )
        }
    };
    f.insert("GeneratorId".into(), generator.into());
    f.insert("Types".into(), types.into());
    f.insert("Title".into(), title.into());
    f.insert("Description".into(), description.into());
    f.insert("Resources".into(), resources.into());
}

/// Grows the finding to a realistic size: mostly 1-5 KB, some up to 10 KB, one in 2,000 near 200 KB.
fn pad(rng: &mut SmallRng, index: u64, f: &mut Map<String, Value>) {
    let target = if index % 2000 == 1999 {
        rng.random_range(190_000..200_000)
    } else if rng.random_range(0..10) == 0 {
        rng.random_range(5_000..10_000)
    } else {
        rng.random_range(1_000..5_000)
    };
    let current = Value::Object(f.clone()).to_string().len();
    if current >= target {
        return;
    }
    let mut notes = Map::new();
    let mut size = current;
    let mut n = 0;
    while size < target {
        let value = format!(
            "observation {n} for finding {index}: {}",
            "lorem ipsum dolor sit amet ".repeat(rng.random_range(1..8))
        );
        size += value.len() + 24;
        notes.insert(format!("aws/inspector/evidence/{n}"), value.into());
        n += 1;
    }
    if let Some(Value::Object(fields)) = f.get_mut("ProductFields") {
        fields.extend(notes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_alone_is_the_id_of_the_finding() {
        for generator in [
            Generator::default(),
            super::Generator {
                home: Some(("222222222222".into(), "eu-west-1".into())),
                ..Generator::default()
            },
        ] {
            for index in 0..50 {
                assert_eq!(
                    generator.finding_value(index)["Id"],
                    generator.finding_id(index)
                );
            }
        }
    }

    #[test]
    fn the_updated_at_alone_is_the_instant_the_finding_carries() {
        let until = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
        let recent = Generator {
            recent: Some((100, until)),
            ..Generator::default()
        };
        let in_last_day = (0..2_000)
            .filter(|&i| recent.updated_at(i) > until - Duration::days(1))
            .count();
        assert!(
            (150..250).contains(&in_last_day),
            "10% of 2,000: {in_last_day}"
        );
        for generator in [Generator::default(), recent] {
            for index in 0..200 {
                let finding = generator.finding_value(index);
                let carried = crate::semantics::parse_time(finding["UpdatedAt"].as_str().unwrap());
                assert_eq!(carried, Some(generator.updated_at(index)), "{finding}");
            }
        }
    }

    #[test]
    fn the_same_index_always_gives_the_same_finding_and_ids_are_unique() {
        let generator = Generator::default();
        assert_eq!(generator.finding(42), generator.finding(42));
        let ids: std::collections::HashSet<String> = (0..500)
            .map(|i| {
                generator.finding_value(i)["Id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(ids.len(), 500);
        let other = Generator {
            seed: 2,
            ..Generator::default()
        };
        assert_ne!(generator.finding(1), other.finding(1));
    }

    #[test]
    fn sizes_and_products_are_varied() {
        let generator = Generator::default();
        let sizes: Vec<usize> = (0..2000).map(|i| generator.finding(i).len()).collect();
        assert!(
            sizes.iter().all(|s| *s >= 1000),
            "min {}",
            sizes.iter().min().unwrap()
        );
        assert!(sizes.iter().any(|s| *s > 150_000), "one near 200 KB");
        let products: std::collections::HashSet<String> = (0..200)
            .map(|i| {
                generator.finding_value(i)["ProductName"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(products.len(), PRODUCTS.len());
    }
}
