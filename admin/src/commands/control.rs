//! `pause` and `resume`.

use foldline::ManagedStore;
use serde::Serialize;

use crate::Admin;
use crate::cli::NameArgs;
use crate::error::{AdminError, Outcome};
use crate::output::Output;

#[derive(Serialize)]
struct ControlLine<'a> {
    projection: &'a str,
    paused: bool,
}

pub(crate) async fn pause<S: ManagedStore>(
    admin: &Admin<S>,
    args: &NameArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    let projection = admin.projection(&args.name)?;
    projection.pause().await?;
    out.record(
        "projection_control",
        &ControlLine {
            projection: &args.name,
            paused: true,
        },
    )?;
    out.line(format!(
        "paused {}: running projectors finish their batch, give their slot up and wait \
         (within their idle interval, 1 s by default)",
        args.name
    ))?;
    Ok(Outcome::Ok)
}

pub(crate) async fn resume<S: ManagedStore>(
    admin: &Admin<S>,
    args: &NameArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    let projection = admin.projection(&args.name)?;
    projection.resume().await?;
    out.record(
        "projection_control",
        &ControlLine {
            projection: &args.name,
            paused: false,
        },
    )?;
    out.line(format!("resumed {}", args.name))?;
    Ok(Outcome::Ok)
}
