using System.Diagnostics;
using Osprey.Data;
using Osprey.Inference;
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
/// raw maps, the head's post-processing (<see cref="Models.Heads.DetectionHead.Postprocess"/>: NMS at conf 0.001, IoU 0.7,
/// max_det 300; an end-to-end head's top-k rows above conf), boxes and labels mapped to original pixels; then every rank's
/// detections gathered and the metrics computed once, in dataset order. One loop for one process and for data parallel:
/// in one process the gather and the sums over ranks leave the values as they are.
/// </summary>
public static class DetectionValidator
{
    /// <summary>Runs validation of <paramref name="model"/> over <paramref name="loader"/> on <paramref name="device"/>.</summary>
    /// <param name="loss">Computes val/box_loss … when given: the head's loss (<see cref="Models.Heads.DetectionHead.CreateLoss"/>)
    /// with its options, the normaliser summed over the ranks of <paramref name="parallel"/>, as in training.</param>
    /// <param name="collectPredictions">Keep COCO-format predictions (save_json).</param>
    /// <param name="inspectBatch">Sees each batch with its NMS output (per image (n, 6) in batch pixels), e.g. for plots.</param>
    /// <param name="parallel">
    /// The ranks (null: one process). Under data parallel <paramref name="loader"/> holds this rank's shard
    /// (<see cref="ValidationSampler"/>, per-rank batch = global batch / world); every rank's detections are gathered to
    /// every rank and evaluated in dataset order, so metrics, confusion matrix and predictions equal those of one process
    /// over the whole set, and the losses use each global batch's target-score normaliser (equal to one process up to
    /// float summation order).
    /// </param>
    public static ValidationResult Run(DetectionModel model, DataLoader loader, Device device, NmsOptions? nms = null,
        IDetectionLoss? loss = null, bool collectPredictions = false, Action<ValidationProgress>? progress = null,
        Action<Batch, IReadOnlyList<Tensor>>? inspectBatch = null, DataParallel? parallel = null)
    {
        nms ??= new NmsOptions { ConfidenceThreshold = NmsOptions.ValidationConfidence };
        parallel ??= new DataParallel();
        loss = loss is null ? null : model.Head.CreateLoss(loss.Options with { GlobalSum = parallel.SumOverRanks });
        bool wasTraining = model.training;
        model.eval();
        try
        {
            return Loop(batch => Detect(model, batch, device, nms), model.Nc, loader, device, loss, collectPredictions, progress,
                inspectBatch, parallel);
        }
        finally
        {
            model.train(wasTraining);
        }
    }

    /// <summary>
    /// Validates an exported graph in ONNX Runtime (<c>model=*.onnx</c>, Ultralytics' AutoBackend): the same loop, metrics
    /// and outputs, without losses. The loader's images must have the graph's input size.
    /// </summary>
    public static ValidationResult Run(OnnxDetector detector, DataLoader loader, NmsOptions nms, bool collectPredictions = false,
        Action<ValidationProgress>? progress = null, Action<Batch, IReadOnlyList<Tensor>>? inspectBatch = null) =>
        Loop(batch =>
        {
            var kept = detector.Detect(batch.ImagesAsFloat(CPU), nms);
            return (null, kept, kept.Select(Osprey.Runtime.HostCopy.Floats).ToList());
        }, detector.Names.Count, loader, CPU, null, collectPredictions, progress, inspectBatch, new DataParallel());

    // The loop of both: per global batch the detections (and the loss items), then every rank's detections scored once.
    static ValidationResult Loop(Func<Batch, (Tensor[]? Maps, IReadOnlyList<Tensor> Kept, List<float[]> Host)> detect, int nc,
        DataLoader loader, Device device, IDetectionLoss? loss, bool collectPredictions, Action<ValidationProgress>? progress,
        Action<Batch, IReadOnlyList<Tensor>>? inspectBatch, DataParallel parallel)
    {
        // Global batch k is batch k of every rank; a rank whose shard has no batch k still takes part in its sums.
        int globalBatches = (loader.Dataset.Count + parallel.World * loader.Options.BatchSize - 1) / (parallel.World * loader.Options.BatchSize);
        var local = new List<double>();                                     // [dataset index, n, 6 × n …] per image
        var lossSums = new double[3];
        int batches = 0;
        var timer = new Stopwatch();
        using (no_grad())
        {
            using var epoch = loader.Epoch(0).GetEnumerator();
            for (int k = 0; k < globalBatches; k++)
            {
                using var scope = NewDisposeScope();
                using Batch? batch = epoch.MoveNext() ? epoch.Current : null;
                var items = new double[3];
                if (batch is not null)
                {
                    timer.Start();
                    var (maps, kept, host) = detect(batch);
                    timer.Stop();
                    if (loss is not null) items = LossItems(loss, maps!, batch, device);
                    for (int i = 0; i < batch.Size; i++) Append(local, batch.Infos[i].DatasetIndex, ToOriginal(host[i], batch.Infos[i]));
                    inspectBatch?.Invoke(batch, kept);
                    progress?.Invoke(new ValidationProgress(++batches, loader.BatchesPerEpoch));
                }
                else loss?.WithoutBatch(device);
                if (loss is null) continue;
                double[] global = parallel.SumOverRanks(items);              // the global batch's loss items
                for (int j = 0; j < 3; j++) lossSums[j] += global[j];
            }
        }
        double[]? losses = loss is null ? null : lossSums.Select(s => s / Math.Max(globalBatches, 1)).ToArray();
        var perImage = Decode(parallel.AllGather(local));
        return Score(perImage, loader.Dataset, nc, collectPredictions, losses, timer.Elapsed.TotalMilliseconds * parallel.World);
    }

    // The batch's box, cls, dfl loss (normalised by the global batch's target-score sum).
    static double[] LossItems(IDetectionLoss loss, Tensor[] maps, Batch batch, Device device)
    {
        using var result = loss.Compute(maps, new DetectionTargets(batch.BatchIndex.to(device), batch.Classes.to(device), batch.Boxes.to(device)));
        var (box, cls, dfl) = result.ItemValues();
        return new double[] { box, cls, dfl };
    }

    // One image's record: its dataset index, its detection count, then x1, y1, x2, y2, score, class of each.
    static void Append(List<double> records, long datasetIndex, Detection[] detections)
    {
        records.Add(datasetIndex);
        records.Add(detections.Length);
        foreach (var d in detections) records.AddRange(new[] { d.X1, d.Y1, d.X2, d.Y2, d.Score, d.Class });
    }

    // The records of every rank back into detections per image, keyed and ordered by dataset index.
    static SortedDictionary<long, Detection[]> Decode(IReadOnlyList<double> records)
    {
        var perImage = new SortedDictionary<long, Detection[]>();
        for (int at = 0; at < records.Count;)
        {
            long id = (long)records[at];
            var detections = new Detection[(int)records[at + 1]];
            at += 2;
            for (int d = 0; d < detections.Length; d++, at += 6)
                detections[d] = new Detection(records[at], records[at + 1], records[at + 2], records[at + 3], records[at + 4], (int)records[at + 5]);
            perImage.Add(id, detections);
        }
        return perImage;
    }

    // Forward in eval mode, decode, the head's post-processing (NMS): the raw maps (for the loss), per-image (n, 6) rows
    // in batch pixels, and the same rows on the host. Note: the host copy is a device → host sync point.
    static (Tensor[]? Maps, IReadOnlyList<Tensor> Kept, List<float[]> Host) Detect(DetectionModel model, Batch batch,
        Device device, NmsOptions nms)
    {
        var maps = model.ForwardFeatures(batch.ImagesAsFloat(device));   // the head's maps, each (b, no, h, w)
        var kept = model.Head.Postprocess(model.Head.Decode(maps), nms); // b × (n, 6); decode: (b, 4 + nc, A) or (b, k, 6)
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
