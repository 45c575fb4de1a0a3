"""source_files: the seven source roots as an observable source asset, one data version per partition."""

import warnings

from dagster import BetaWarning, DataVersion, DataVersionsByPartition, OpExecutionContext, observable_source_asset

from eemo_pipeline.partitions import source_partitions
from eemo_pipeline.resources import InputPathsResource, StorageResource
from eemo_pipeline.sources import SOURCES, source_root
from eemo_pipeline.sources.files import source_fingerprint

# Per-source cache of file hashes under the storage root, so unchanged files are not re-read.
FINGERPRINT_CACHE = "_source_fingerprints"


# observable_source_asset is marked beta; silence the warning it prints on every load of the code location.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", BetaWarning)
    _observable = observable_source_asset(
        name="source_files",
        partitions_def=source_partitions,
        group_name="ingestion",
        description="Every file under each configured source root (EEMO_<SOURCE>_ROOT); its data version is a "
        "sha256 over the files' relative paths and contents, so any changed, added or removed file changes it.",
    )


@_observable
def source_files(context: OpExecutionContext, storage: StorageResource,
                 input_paths: InputPathsResource) -> DataVersionsByPartition:
    settings = input_paths.settings()
    versions = {}
    for source in SOURCES:
        try:
            root = source_root(source, settings.root(source))
        except (ValueError, FileNotFoundError) as error:
            # An unconfigured source gets no observation, so nothing downstream of it is requested.
            context.log.info(f"{source}: not observed ({error})")
            continue
        fingerprint = source_fingerprint(root, storage.path / FINGERPRINT_CACHE / f"{source}.json")
        if fingerprint.skipped:
            context.log.warning(f"{source}: skipped {len(fingerprint.skipped)} entries that are no files (FIFO, "
                                f"socket or device): {', '.join(fingerprint.skipped[:20])}")
        context.log.info(
            f"{source}: {fingerprint.files} files, {fingerprint.bytes} bytes ({fingerprint.hashed} hashed), "
            f"version {fingerprint.version[:12]}"
        )
        versions[source] = DataVersion(fingerprint.version)
    return DataVersionsByPartition(versions)
