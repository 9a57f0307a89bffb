//! `athena-ddl`: print (or write) the DDL of the findings table and its `latest` view.

use std::path::Path;

use crate::athena::{ddl, TableSpec};
use crate::error::{Error, Result};
use crate::request::Api;
use crate::sink::Destination;

/// Writes the DDL for `destination` to `output`, or returns it to print.
pub fn athena_ddl(
    destination: &str,
    database: &str,
    (api, table): (Api, Option<&str>),
    output: Option<&Path>,
) -> Result<Option<String>> {
    let destination = Destination::parse(destination)?;
    let format = api.format();
    let table = table.unwrap_or(format.table().dir);
    let spec = TableSpec::new(database, table, &destination, format)?;
    write_or_return(ddl(&spec), output)
}

/// Writes `text` to `output`, or returns it to print.
pub fn write_or_return(text: String, output: Option<&Path>) -> Result<Option<String>> {
    match output {
        Some(path) => std::fs::write(path, text)
            .map(|_| None)
            .map_err(|e| Error::Usage(format!("cannot write {}: {e}", path.display()))),
        None => Ok(Some(text)),
    }
}
