//! A faster operator for one shape of window, the running sum of a 64-bit
//! integer: `SUM(x) OVER (PARTITION BY … ORDER BY … ROWS BETWEEN UNBOUNDED
//! PRECEDING AND CURRENT ROW)`, over rows already sorted by the partition
//! keys. It is the allowances' running sum of `sql/rating/rated_events.sql`
//! (what a pool's earlier events used).
//!
//! DataFusion's own window operator (`BoundedWindowAggExec`) computes it
//! row by row through a generic accumulator, a scalar value per row, and
//! buffers each partition's rows: 6 s of CPU for 10 million events, as much
//! as the sort before it (docs/PERFORMANCE.md). [`RunningSums`] is a
//! physical optimiser rule that replaces that operator, when and only when
//! it computes exactly this shape, by [`RunningSumExec`], which adds each
//! batch's values in one loop.
//!
//! No rule of rating.md is in here: the SQL still says what is summed, over
//! which rows, in which order; this is how the engine computes that SQL.
//! The tests below compare both operators on the same queries (partitions
//! across batches, empty values, several partitions), and the golden test
//! rates the samples through it.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanBufferBuilder, Int64Array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::kernels::cmp::not_distinct;
use datafusion::arrow::compute::partition;
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{WindowFrameBound, WindowFrameUnits};
use datafusion::physical_expr::window::{PlainAggregateWindowExpr, WindowExpr};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr_common::sort_expr::OrderingRequirements;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::apply_expression_roots;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::windows::BoundedWindowAggExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, InputOrderMode,
    PlanProperties,
};
use futures::{Stream, StreamExt};

/// The optimiser rule: each `BoundedWindowAggExec` computing one running
/// sum of a 64-bit integer over sorted partitions becomes a
/// [`RunningSumExec`]; any other window is left to DataFusion.
#[derive(Debug, Default)]
pub struct RunningSums;

impl PhysicalOptimizerRule for RunningSums {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            Ok(match RunningSumExec::replacing(&node)? {
                Some(exec) => Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(node),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "running_sums"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `SUM(x) OVER (PARTITION BY p… ORDER BY … ROWS BETWEEN UNBOUNDED
/// PRECEDING AND CURRENT ROW)` for an `x` of type `Int64`, over input whose
/// rows of a partition are contiguous and in the window's order (DataFusion
/// sorts them so before the window, and this operator keeps the window's
/// requirements on its input).
#[derive(Debug)]
pub struct RunningSumExec {
    /// The window this replaces (of one expression): its input, partition
    /// keys and name, its output schema and properties, and its
    /// requirements on the input.
    window: Arc<BoundedWindowAggExec>,
    /// What is summed: the expression's argument.
    value: Arc<dyn PhysicalExpr>,
    metrics: ExecutionPlanMetricsSet,
}

impl RunningSumExec {
    /// The operator computing `node`, when `node` is a window of this shape.
    fn replacing(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Self>> {
        let Some(window) = node.downcast_ref::<BoundedWindowAggExec>() else {
            return Ok(None);
        };
        // Sorted: every partition key is a prefix of the input's order, so
        // a partition's rows are contiguous.
        if window.input_order_mode != InputOrderMode::Sorted {
            return Ok(None);
        }
        let [expr] = window.window_expr() else {
            return Ok(None);
        };
        let Some(plain) = expr.as_any().downcast_ref::<PlainAggregateWindowExpr>() else {
            return Ok(None);
        };
        let aggregate = plain.get_aggregate_expr();
        let frame = expr.get_window_frame();
        let rows_to_here = frame.units == WindowFrameUnits::Rows
            && frame.start_bound.is_unbounded()
            && frame.end_bound == WindowFrameBound::CurrentRow;
        // The expression's FILTER clause has no accessor; its Debug form
        // ends with it (covered by a test below).
        let unfiltered = format!("{plain:?}").ends_with("filter: None }");
        let [value] = &aggregate.expressions()[..] else {
            return Ok(None);
        };
        let input = window.input();
        if aggregate.fun().name() != "sum"
            || aggregate.is_distinct()
            || !rows_to_here
            || !unfiltered
            || value.data_type(&input.schema())? != DataType::Int64
            || expr.field()?.data_type() != &DataType::Int64
        {
            return Ok(None);
        }
        Ok(Some(Self {
            window: Arc::new(window.clone()),
            value: value.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }

    /// The window's one expression (see [`RunningSumExec::replacing`]).
    fn expr(&self) -> &Arc<dyn WindowExpr> {
        &self.window.window_expr()[0]
    }
}

impl DisplayAs for RunningSumExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "RunningSumExec: {}", self.expr().name())
    }
}

impl ExecutionPlan for RunningSumExec {
    fn name(&self) -> &str {
        "RunningSumExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.window.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.window.input()]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        apply_expression_roots(self.expr().partition_by().iter().chain([&self.value]), f)
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.window.input_distribution_requirements()
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        self.window.required_input_ordering()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        #[allow(deprecated)]
        let window = Arc::clone(&self.window).with_new_children(children)?;
        match Self::replacing(&window)? {
            Some(exec) => Ok(Arc::new(exec)),
            None => Ok(window),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.window.input().execute(partition, context)?;
        Ok(Box::pin(RunningSumStream {
            input,
            schema: self.window.schema(),
            partition_by: self.expr().partition_by().to_vec(),
            value: self.value.clone(),
            last_key: None,
            sum: 0,
            summed: false,
            metrics: BaselineMetrics::new(&self.metrics, partition),
        }))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

struct RunningSumStream {
    input: SendableRecordBatchStream,
    schema: SchemaRef,
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    value: Arc<dyn PhysicalExpr>,
    /// The partition keys of the last row seen (arrays of one row).
    last_key: Option<Vec<ArrayRef>>,
    /// The sum of the current partition's values so far, and whether it has
    /// had a value (SUM of no value but NULLs is NULL).
    sum: i64,
    summed: bool,
    metrics: BaselineMetrics,
}

impl RunningSumStream {
    fn sum_batch(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(RecordBatch::new_empty(self.schema.clone()));
        }
        let keys = self
            .partition_by
            .iter()
            .map(|expr| expr.evaluate(&batch)?.into_array(rows))
            .collect::<Result<Vec<_>>>()?;
        let values = self.value.evaluate(&batch)?.into_array(rows)?;
        let values = values.as_primitive::<Int64Type>();
        let ranges = if keys.is_empty() {
            std::iter::once(0..rows).collect()
        } else {
            partition(&keys)?.ranges()
        };
        // Whether the batch's first row is in the last batch's partition.
        let mut continues = self.last_key.is_some();
        for (last, key) in self.last_key.iter().flatten().zip(&keys) {
            continues &= not_distinct(last, &key.slice(0, 1))?.value(0);
        }
        let mut sums = Vec::with_capacity(rows);
        let mut valid = BooleanBufferBuilder::new(rows);
        for (i, range) in ranges.into_iter().enumerate() {
            if i > 0 || !continues {
                self.sum = 0;
                self.summed = false;
            }
            for row in range {
                if values.is_valid(row) {
                    self.sum = self.sum.wrapping_add(values.value(row));
                    self.summed = true;
                }
                sums.push(self.sum);
                valid.append(self.summed);
            }
        }
        self.last_key = Some(keys.iter().map(|key| key.slice(rows - 1, 1)).collect());
        let sums = Int64Array::new(sums.into(), Some(NullBuffer::new(valid.finish())));
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(sums));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

impl Stream for RunningSumStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.input.poll_next_unpin(cx);
        let result = match polled {
            Poll::Ready(Some(Ok(batch))) => {
                let elapsed = self.metrics.elapsed_compute().clone();
                let timer = elapsed.timer();
                let summed = self.sum_batch(batch);
                timer.done();
                Poll::Ready(Some(summed))
            }
            other => other,
        };
        self.metrics.record_poll(result)
    }
}

impl RecordBatchStream for RunningSumStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// A session with or without the rule, batches of `batch_size` rows.
    fn session(with_rule: bool, batch_size: usize) -> SessionContext {
        let config = SessionConfig::new()
            .with_batch_size(batch_size)
            .with_target_partitions(2);
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features();
        if with_rule {
            state = state.with_physical_optimizer_rule(Arc::new(RunningSums));
        }
        SessionContext::new_with_state(state.build())
    }

    /// 500 events over 7 lines and 3 groups, some quantities and keys NULL,
    /// in no particular order.
    fn events() -> RecordBatch {
        let n = 500;
        let line = (0..n)
            .map(|i| (i % 11 != 5).then(|| format!("line{}", i % 7)))
            .collect::<StringArray>();
        let group = (0..n)
            .map(|i| (i % 13 != 0).then(|| ["DATA", "VOICE", "SMS"][i % 3]))
            .collect::<StringArray>();
        let at = (0..n)
            .map(|i| Some(((i * 37) % 101) as i64))
            .collect::<Int64Array>();
        let qty = (0..n)
            .map(|i| (i % 9 != 4).then_some(((i * 13) % 50) as i64 - 5))
            .collect::<Int64Array>();
        let schema = Arc::new(Schema::new(vec![
            Field::new("line", DataType::Utf8, true),
            Field::new("grp", DataType::Utf8, true),
            Field::new("at", DataType::Int64, true),
            Field::new("qty", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(line), Arc::new(group), Arc::new(at), Arc::new(qty)],
        )
        .unwrap()
    }

    /// The query's result and physical plan, with or without the rule.
    async fn run(sql: &str, with_rule: bool, batch_size: usize) -> (String, String) {
        let ctx = session(with_rule, batch_size);
        ctx.register_batch("events", events()).unwrap();
        let frame = ctx.sql(sql).await.unwrap();
        let plan = frame.clone().create_physical_plan().await.unwrap();
        let plan = displayable(plan.as_ref()).indent(false).to_string();
        let batches = frame.collect().await.unwrap();
        (pretty_format_batches(&batches).unwrap().to_string(), plan)
    }

    const RUNNING: &str = "SELECT line, grp, at, qty, SUM(qty) OVER (PARTITION BY line, grp \
        ORDER BY at, qty ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS used \
        FROM events ORDER BY line, grp, at, qty, used";

    #[tokio::test]
    async fn running_sums_match_datafusion_across_batches() {
        for batch_size in [1, 3, 64, 8192] {
            let (ours, plan) = run(RUNNING, true, batch_size).await;
            let (theirs, their_plan) = run(RUNNING, false, batch_size).await;
            assert!(plan.contains("RunningSumExec"), "{plan}");
            assert!(!plan.contains("BoundedWindowAggExec"), "{plan}");
            assert!(their_plan.contains("BoundedWindowAggExec"), "{their_plan}");
            assert_eq!(ours, theirs, "batch size {batch_size}");
        }
    }

    #[tokio::test]
    async fn a_running_sum_without_partitions_or_of_only_nulls() {
        for sql in [
            "SELECT at, qty, SUM(qty) OVER (ORDER BY at, qty ROWS UNBOUNDED PRECEDING) AS s \
             FROM events ORDER BY at, qty, s",
            "SELECT line, at, SUM(CASE WHEN qty > 100 THEN qty END) OVER (PARTITION BY line \
             ORDER BY at, qty ROWS UNBOUNDED PRECEDING) AS s FROM events ORDER BY line, at, s",
        ] {
            let (ours, plan) = run(sql, true, 7).await;
            let (theirs, _) = run(sql, false, 7).await;
            assert!(plan.contains("RunningSumExec"), "{plan}");
            assert_eq!(ours, theirs, "{sql}");
        }
    }

    #[tokio::test]
    async fn other_windows_are_left_to_datafusion() {
        for sql in [
            // A frame that is not up to the current row.
            "SELECT line, SUM(qty) OVER (PARTITION BY line ORDER BY at, qty \
             ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS s FROM events",
            // RANGE: peers of equal `at` are summed together.
            "SELECT line, SUM(qty) OVER (PARTITION BY line ORDER BY at) AS s FROM events",
            // Another aggregate, a filter, a sum of another type.
            "SELECT line, MAX(qty) OVER (PARTITION BY line ORDER BY at \
             ROWS UNBOUNDED PRECEDING) AS s FROM events",
            "SELECT line, SUM(qty) FILTER (WHERE qty > 10) OVER (PARTITION BY line \
             ORDER BY at ROWS UNBOUNDED PRECEDING) AS s FROM events",
            "SELECT line, SUM(CAST(qty AS DOUBLE)) OVER (PARTITION BY line ORDER BY at \
             ROWS UNBOUNDED PRECEDING) AS s FROM events",
        ] {
            let (ours, plan) = run(&format!("{sql} ORDER BY 1, 2"), true, 7).await;
            let (theirs, _) = run(&format!("{sql} ORDER BY 1, 2"), false, 7).await;
            assert!(!plan.contains("RunningSumExec"), "{sql}\n{plan}");
            assert_eq!(ours, theirs, "{sql}");
        }
    }
}
