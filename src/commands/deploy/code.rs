//! The code bucket: found or created in the stack's Region (Lambda reads code only from a
//! bucket in its own Region), private, holding the package and the template under
//! content-addressed keys, so a new build is a new key and CloudFormation updates the code.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use aws_sdk_s3::types::{PublicAccessBlockConfiguration, ServerSideEncryption};
use sha2::{Digest, Sha256};

use crate::aws::{Caller, Failure};
use crate::error::{Error, Result};

/// One file to upload, and its content-addressed key.
pub(super) struct Artifact {
    /// `sechub-export/<first 16 hex digits of its SHA-256>/<name>`.
    pub(super) key: String,
    bytes: Vec<u8>,
}

impl Artifact {
    /// `bytes` named `name`.
    pub(super) fn new(name: &str, bytes: Vec<u8>) -> Artifact {
        let digest = hex::encode(Sha256::digest(&bytes));
        Artifact {
            key: format!("sechub-export/{}/{name}", &digest[..16]),
            bytes,
        }
    }
}

/// The code bucket, as found.
pub(super) struct CodeBucket {
    /// Its name.
    pub(super) name: String,
    region: String,
    exists: bool,
    s3: aws_sdk_s3::Client,
}

impl CodeBucket {
    /// Looks `name` up: ours and in the caller's Region, missing (to create), or refused.
    pub(super) async fn find(caller: &Caller, name: &str) -> Result<CodeBucket> {
        let s3 = crate::aws::s3_client(&caller.config);
        let bucket_error =
            |message: String| Error::destination(format!("s3://{name}"), message, None);
        let exists = match s3.head_bucket().bucket(name).send().await {
            Ok(_) => true,
            Err(err) => {
                let failure = Failure::of(&err);
                match failure.status {
                    Some(404) => false,
                    Some(403) => return Err(bucket_error(
                        "exists and belongs to another account, or this one may not read it; pass --code-bucket with a bucket of yours in the stack's Region".into(),
                    )),
                    _ => return Err(bucket_error(format!(
                        "cannot check the code bucket ({}); check the network and --region",
                        failure.summary()
                    ))),
                }
            }
        };
        if exists {
            let location = s3
                .get_bucket_location()
                .bucket(name)
                .send()
                .await
                .map_err(|e| {
                    bucket_error(format!(
                        "cannot read its Region ({})",
                        Failure::of(&e).summary()
                    ))
                })?;
            // An empty location constraint is us-east-1.
            let region = location
                .location_constraint()
                .map(|c| c.as_str().to_string())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "us-east-1".into());
            if region != caller.region {
                return Err(bucket_error(format!(
                    "is in {region}, the stack in {}: Lambda reads code only from a bucket in its own Region; pass --code-bucket with one in {}",
                    caller.region, caller.region
                )));
            }
        }
        Ok(CodeBucket {
            name: name.to_string(),
            region: caller.region.clone(),
            exists,
            s3,
        })
    }

    /// What a dry run says of the bucket.
    pub(super) fn plan_line(&self) -> String {
        if self.exists {
            format!("would reuse code bucket {}", self.name)
        } else {
            format!(
                "would create code bucket {} in {} (private, encrypted)",
                self.name, self.region
            )
        }
    }

    /// What a dry run says of an artifact.
    pub(super) async fn artifact_plan_line(&self, artifact: &Artifact) -> Result<String> {
        Ok(if self.holds(artifact).await? {
            format!(
                "would keep s3://{}/{} (already uploaded)",
                self.name, artifact.key
            )
        } else {
            format!("would upload s3://{}/{}", self.name, artifact.key)
        })
    }

    /// Creates the bucket if it is missing: private, SSE-S3.
    pub(super) async fn ensure(&self) -> Result<Vec<String>> {
        if self.exists {
            return Ok(vec![format!("code bucket {} (reused)", self.name)]);
        }
        let fail = |what: &str, failure: Failure| {
            Error::destination(
                format!("s3://{}", self.name),
                format!(
                    "{what} ({}); pass --code-bucket with a bucket of yours",
                    failure.summary()
                ),
                None,
            )
        };
        let mut create = self.s3.create_bucket().bucket(&self.name);
        if self.region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                    .build(),
            );
        }
        create
            .send()
            .await
            .map_err(|e| fail("cannot create the code bucket", Failure::of(&e)))?;
        let private = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        self.s3
            .put_public_access_block()
            .bucket(&self.name)
            .public_access_block_configuration(private)
            .send()
            .await
            .map_err(|e| fail("cannot block public access", Failure::of(&e)))?;
        Ok(vec![format!(
            "code bucket {} created in {} (private)",
            self.name, self.region
        )])
    }

    /// Whether the artifact's key is already there (same key, same content).
    async fn holds(&self, artifact: &Artifact) -> Result<bool> {
        if !self.exists {
            return Ok(false);
        }
        match self
            .s3
            .head_object()
            .bucket(&self.name)
            .key(&artifact.key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if Failure::of(&err).status == Some(404) => Ok(false),
            Err(err) => Err(Error::destination(
                format!("s3://{}/{}", self.name, artifact.key),
                Failure::of(&err).summary(),
                None,
            )),
        }
    }

    /// Uploads the artifact unless its key is already there.
    pub(super) async fn upload(&self, artifact: &Artifact) -> Result<String> {
        let location = format!("s3://{}/{}", self.name, artifact.key);
        if self.holds(artifact).await? {
            return Ok(format!("{location} (already uploaded)"));
        }
        self.s3
            .put_object()
            .bucket(&self.name)
            .key(&artifact.key)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from(artifact.bytes.clone()))
            .send()
            .await
            .map_err(|e| Error::destination(&location, Failure::of(&e).summary(), None))?;
        Ok(format!(
            "{location} uploaded ({} bytes)",
            artifact.bytes.len()
        ))
    }

    /// The HTTPS URL CloudFormation reads `key` from (path style when the name has dots, which
    /// virtual-hosted TLS cannot serve).
    pub(super) fn url_of(&self, key: &str) -> String {
        if self.name.contains('.') {
            format!(
                "https://s3.{}.amazonaws.com/{}/{key}",
                self.region, self.name
            )
        } else {
            format!(
                "https://{}.s3.{}.amazonaws.com/{key}",
                self.name, self.region
            )
        }
    }
}
