"""The cross-round summary: one table of every round's counts and metrics, and a
plot of accuracy, pass rate and diversity per round (shown in the asset's metadata)."""

import base64

import dagster as dg
import polars as pl

from assets.display import for_display
from assets.placement import on
from assets.resources import ExperimentResource
from filters.ledger import ledger_plot, ledger_table
from filters.summary import markdown_table, rounds_plot, summary_table


@dg.asset(group_name="report", kinds={"polars"}, deps=["evaluation"], **on("cpu"))
def summary(context: dg.AssetExecutionContext, experiment: ExperimentResource) -> pl.DataFrame:
    """Every round of the experiment in one table (from the round files), plus a PNG plot."""
    experiment = experiment.of(context)
    store = experiment.store
    table = summary_table(store)
    png = rounds_plot(table, experiment.config.name)
    path = store.write_file(png, "summary.png")
    context.add_output_metadata(
        {
            "rounds": dg.MetadataValue.int(max(table.height - 1, 0)),
            "table": dg.MetadataValue.md(markdown_table(table)),
            "plot": dg.MetadataValue.md(f"![rounds](data:image/png;base64,{base64.b64encode(png).decode()})"),
            "plot_path": dg.MetadataValue.path(store.where(path)),
        }
    )
    return table


@dg.asset(group_name="report", kinds={"polars"}, deps=["evaluation"], **on("cpu"))
def ledger(context: dg.AssetExecutionContext, experiment: ExperimentResource) -> pl.DataFrame:
    """The compute ledger: each round's wall and CPU seconds, peak memory, tokens, samples
    verified, kept rows per 1k samples, held-out points per hour and cost, plus a plot."""
    from assets.rounds import ROUND_ASSETS
    from assets.stage_costs import experiment_costs

    experiment = experiment.of(context)
    cfg, store = experiment.config, experiment.store
    rounds = experiment_costs(context.instance, context.asset_key.path[0], [a.key.path[-1] for a in ROUND_ASSETS])
    table = ledger_table(rounds, cfg.operations.price_per_hour)
    png = ledger_plot([s for stages in rounds for s in stages], table, f"{cfg.name}: compute per round")
    path = store.write_file(png, "ledger.png")
    context.add_output_metadata(
        for_display(
            {
                "rounds": dg.MetadataValue.int(table.height),
                "wall_s": float(table["wall_s"].fill_null(0).sum()),
                "cpu_s": float(table["cpu_s"].fill_null(0).sum()),
                "table": dg.MetadataValue.md(markdown_table(table)),
                "plot": dg.MetadataValue.md(f"![ledger](data:image/png;base64,{base64.b64encode(png).decode()})"),
                "plot_path": dg.MetadataValue.path(store.where(path)),
            }
        )
    )
    return table


def comparison(stores: dict) -> dg.AssetsDefinition:
    """The `comparison` report of a folder of experiments (name -> its selftaught.store.Store):
    the table `selftaught compare` prints (filters.compare), as markdown in the UI."""
    from filters.compare import compare_table

    @dg.asset(name="comparison", group_name="report", kinds={"polars"}, **on("cpu"))
    def compare_experiments(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """The folder's experiments side by side per round (from their files): accuracy per
        difficulty and the control's, samples, kept rows, tokens, wall seconds."""
        table = compare_table(stores)
        return dg.MaterializeResult(
            metadata={
                "experiments": dg.MetadataValue.text(", ".join(stores)),
                "rows": dg.MetadataValue.int(table.height),
                "table": dg.MetadataValue.md(markdown_table(table)),
            }
        )

    return compare_experiments
