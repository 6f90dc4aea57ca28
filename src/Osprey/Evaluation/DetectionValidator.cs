using System.Diagnostics;
using Osprey.Data;
using Osprey.Distributed;
using Osprey.Losses;
using Osprey.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Evaluation;

/// <summary>What one validation pass produced.</summary>
/// <param name="Metrics">P, R, mAP50, mAP50-95 (COCOeval semantics) and the per-class table.</param>
/// <param name="Losses">Mean box, cls, dfl loss per batch (null when not computed).</param>
/// <param name="Confusion">Confusion matrix at conf 0.25, IoU 0.45.</param>
/// <param name="Evaluator">The per-image records (to merge shards across ranks).</param>
/// <param name="Predictions">COCO-format predictions in original pixels (when collected).</param>
/// <param name="Images">Images evaluated.</param>
/// <param name="Instances">Ground-truth boxes.</param>
/// <param name="MillisecondsPerImage">Inference + NMS time per image.</param>
public sealed record ValidationResult(DetectionMetrics Metrics, IReadOnlyList<double>? Losses, ConfusionMatrix Confusion,
    CocoEvaluator Evaluator, IReadOnlyList<CocoPrediction> Predictions, int Images, int Instances, double MillisecondsPerImage);

/// <summary>Progress of a validation pass: batches done of total.</summary>
public readonly record struct ValidationProgress(int Batch, int Batches);

/// <summary>
/// Validation lifecycle (Ultralytics' DetectionValidator): per batch forward in eval mode, optional loss on the
/// raw maps, NMS (conf 0.001, IoU 0.7, max_det 300), boxes and labels mapped to original pixels, metrics
/// accumulated per image; then computed once.
/// </summary>
public static class DetectionValidator
{
    /// <summary>Runs validation of <paramref name="model"/> over <paramref name="loader"/> on <paramref name="device"/>.</summary>
    /// <param name="loss">Computes val/box_loss … when given.</param>
    /// <param name="collectPredictions">Keep COCO-format predictions (save_json).</param>
    /// <param name="inspectBatch">Sees each batch with its NMS output (per image (n, 6) in batch pixels), e.g. for plots.</param>
    /// <param name="group">
    /// Data-parallel validation: <paramref name="loader"/> holds this rank's shard (<see cref="ValidationSampler"/>,
    /// per-rank batch = global batch / world); every rank's detections are gathered to every rank and evaluated in
    /// dataset order, so metrics, confusion matrix and predictions equal those of one process over the whole set.
    /// The losses use each global batch's target-score normaliser (equal to one process up to float summation order).
    /// </param>
    public static ValidationResult Run(DetectionModel model, DataLoader loader, Device device, NmsOptions? nms = null,
        DetectionLoss? loss = null, bool collectPredictions = false, Action<ValidationProgress>? progress = null,
        Action<Batch, IReadOnlyList<Tensor>>? inspectBatch = null, IProcessGroup? group = null)
    {
        if (group is { Communicates: true })
            return RunSharded(model, loader, device, nms, loss, collectPredictions, progress, inspectBatch, group);
        nms ??= new NmsOptions { ConfidenceThreshold = NmsOptions.ValidationConfidence };
        bool wasTraining = model.training;
        model.eval();
        var perImage = new SortedDictionary<long, Detection[]>();
        var lossSums = new double[3];
        int batches = 0;
        var timer = new Stopwatch();
        try
        {
            using var noGrad = no_grad();
            foreach (Batch batch in loader.Epoch(0))
            {
                using var scope = NewDisposeScope();
                using var owned = batch;
                timer.Start();
                var (maps, kept, host) = Detect(model, batch, device, nms);
                timer.Stop();
                if (loss is not null)
                {
                    using var result = loss.Compute(maps, new DetectionTargets(
                        batch.BatchIndex.to(device), batch.Classes.to(device), batch.Boxes.to(device)));
                    var (box, cls, dfl) = result.ItemValues();
                    lossSums[0] += box; lossSums[1] += cls; lossSums[2] += dfl;
                }
                for (int i = 0; i < batch.Size; i++)
                    perImage.Add(batch.Infos[i].DatasetIndex, ToOriginal(host[i], batch.Infos[i]));
                inspectBatch?.Invoke(batch, kept);
                batches++;
                progress?.Invoke(new ValidationProgress(batches, loader.BatchesPerEpoch));
            }
        }
        finally
        {
            model.train(wasTraining);
        }
        double[]? losses = loss is null ? null : lossSums.Select(s => s / Math.Max(batches, 1)).ToArray();
        return Score(perImage, loader.Dataset, model.Nc, collectPredictions, losses, timer.Elapsed.TotalMilliseconds);
    }

    static ValidationResult RunSharded(DetectionModel model, DataLoader loader, Device device, NmsOptions? nms,
        DetectionLoss? loss, bool collectPredictions, Action<ValidationProgress>? progress,
        Action<Batch, IReadOnlyList<Tensor>>? inspectBatch, IProcessGroup group)
    {
        nms ??= new NmsOptions { ConfidenceThreshold = NmsOptions.ValidationConfidence };
        int world = group.WorldSize;
        int globalBatches = (loader.Dataset.Count + world * loader.Options.BatchSize - 1) / (world * loader.Options.BatchSize);
        // Per global batch k: raw Σ box, cls, dfl terms (gains applied, not normalised) and raw Σ target scores.
        var rawLosses = new double[globalBatches * 4];
        double localScoreSum = 0;
        DetectionLoss? rawLoss = loss is null ? null : new DetectionLoss(loss.Options with
        {
            ReduceTargetScoresSum = s => { localScoreSum = s.to(ScalarType.Float64).item<double>(); return ones_like(s); },
            LossBatchScale = null,
        });
        var local = new List<double>(); // [imageId, detections, 6 × detections …] per image
        bool wasTraining = model.training;
        model.eval();
        int batches = 0;
        var timer = new Stopwatch();
        try
        {
            using var noGrad = no_grad();
            foreach (Batch batch in loader.Epoch(0))
            {
                using var scope = NewDisposeScope();
                using var owned = batch;
                timer.Start();
                var (maps, kept, host) = Detect(model, batch, device, nms);
                timer.Stop();
                if (rawLoss is not null)
                {
                    using var result = rawLoss.Compute(maps, new DetectionTargets(
                        batch.BatchIndex.to(device), batch.Classes.to(device), batch.Boxes.to(device)));
                    var (box, cls, dfl) = result.ItemValues();
                    int k = batch.Index;
                    rawLosses[4 * k] += box; rawLosses[4 * k + 1] += cls; rawLosses[4 * k + 2] += dfl;
                    rawLosses[4 * k + 3] += localScoreSum;
                }
                for (int i = 0; i < batch.Size; i++)
                {
                    var detections = ToOriginal(host[i], batch.Infos[i]);
                    local.Add(batch.Infos[i].DatasetIndex);
                    local.Add(detections.Length);
                    foreach (var d in detections) local.AddRange(new[] { d.X1, d.Y1, d.X2, d.Y2, d.Score, d.Class });
                }
                inspectBatch?.Invoke(batch, kept);
                batches++;
                progress?.Invoke(new ValidationProgress(batches, loader.BatchesPerEpoch));
            }
        }
        finally
        {
            model.train(wasTraining);
        }

        // Gather every rank's detections (padded to the longest shard), then evaluate in dataset order everywhere.
        using var length = tensor(new long[] { local.Count });
        using var lengths = group.AllGather(length);
        long[] counts = lengths.data<long>().ToArray();
        long longest = Math.Max(counts.Max(), 1);
        var padded = new double[longest];
        local.CopyTo(padded);
        using var mine = tensor(padded, dtype: ScalarType.Float64);
        using var all = group.AllGather(mine);
        double[] gathered = all.data<double>().ToArray();
        var perImage = new SortedDictionary<long, Detection[]>();
        for (int r = 0; r < world; r++)
        {
            long at = r * longest, end = at + counts[r];
            while (at < end)
            {
                long id = (long)gathered[at];
                var detections = new Detection[(int)gathered[at + 1]];
                at += 2;
                for (int d = 0; d < detections.Length; d++, at += 6)
                    detections[d] = new Detection(gathered[at], gathered[at + 1], gathered[at + 2], gathered[at + 3],
                        gathered[at + 4], (int)gathered[at + 5]);
                perImage[id] = detections;
            }
        }
        double[]? losses = null;
        if (loss is not null)
        {
            using var sums = tensor(rawLosses, dtype: ScalarType.Float64);
            group.AllReduce(sums, ReduceOp.Sum);
            double[] s = sums.data<double>().ToArray();
            losses = new double[3];
            for (int k = 0; k < globalBatches; k++)
                for (int j = 0; j < 3; j++) losses[j] += s[4 * k + j] / Math.Max(s[4 * k + 3], 1);
            for (int j = 0; j < 3; j++) losses[j] /= Math.Max(globalBatches, 1);
        }
        return Score(perImage, loader.Dataset, model.Nc, collectPredictions, losses, timer.Elapsed.TotalMilliseconds * world);
    }

    // Forward in eval mode, decode, NMS: the raw maps (for the loss), per-image (n, 6) rows in batch pixels, and
    // the same rows on the host. Note: the host copy is a device → host sync point.
    static (Tensor[] Maps, IReadOnlyList<Tensor> Kept, List<float[]> Host) Detect(DetectionModel model, Batch batch,
        Device device, NmsOptions nms)
    {
        var maps = model.ForwardFeatures(batch.ImagesAsFloat(device));   // 3 × (b, no, h, w)
        var kept = Nms.NonMaxSuppression(model.Head.Decode(maps), nms);  // b × (n, 6); decode: (b, 4 + nc, A)
        return (maps, kept, kept.Select(Osprey.Runtime.HostCopy.Floats).ToList());
    }

    // Scores every image's detections (original pixels, keyed and ordered by dataset index) against its labels.
    static ValidationResult Score(SortedDictionary<long, Detection[]> perImage, DetectionDataset dataset, int nc,
        bool collectPredictions, double[]? losses, double inferenceMilliseconds)
    {
        var evaluator = new CocoEvaluator();
        var confusion = new ConfusionMatrix(nc);
        var predictions = new List<CocoPrediction>();
        int instances = 0;
        foreach (var (id, detections) in perImage)
        {
            LabeledImage labels = dataset.Images[(int)id];
            var truths = GroundTruthOf(labels);
            evaluator.Update(id, detections, truths);
            confusion.Process(detections, truths);
            if (collectPredictions) predictions.AddRange(detections.Select(d => CocoPrediction.FromXyxy(labels.ImagePath, d)));
            instances += truths.Length;
        }
        int images = perImage.Count;
        return new ValidationResult(evaluator.Compute(), losses, confusion, evaluator, predictions, images, instances,
            images == 0 ? 0 : inferenceMilliseconds / images);
    }

    /// <summary>Ground truths of an image in original pixels (normalised centre-xywh × image size).</summary>
    public static GroundTruth[] GroundTruthOf(LabeledImage image)
    {
        var truths = new GroundTruth[image.BoxCount];
        for (int j = 0; j < truths.Length; j++)
        {
            double cx = image.Boxes[4 * j] * image.Width, cy = image.Boxes[4 * j + 1] * image.Height;
            double w = image.Boxes[4 * j + 2] * image.Width, h = image.Boxes[4 * j + 3] * image.Height;
            truths[j] = new GroundTruth(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, image.Classes[j]);
        }
        return truths;
    }

    // NMS rows [x1, y1, x2, y2, conf, cls] in batch pixels → detections in original pixels (clipped).
    static Detection[] ToOriginal(float[] rows, ImageInfo info)
    {
        var detections = new Detection[rows.Length / 6];
        for (int k = 0; k < detections.Length; k++)
        {
            var (x1, y1, x2, y2) = info.ToOriginal(rows[6 * k], rows[6 * k + 1], rows[6 * k + 2], rows[6 * k + 3]);
            detections[k] = new Detection(x1, y1, x2, y2, rows[6 * k + 4], (int)rows[6 * k + 5]);
        }
        return detections;
    }
}
