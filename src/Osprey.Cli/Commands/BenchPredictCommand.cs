using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Osprey.Benchmarks;
using Osprey.Config;
using Osprey.Evaluation;
using Spectre.Console;

namespace Osprey.Cli;

/// <summary>
/// <c>osprey bench predict [model=yolov8n.yaml] [imgsz=640] [runs=20] [source=image] [conf=0.25] [iou=0.7] [max_det=300]</c>:
/// batch-1 latency on the CPU of the fused TorchSharp model and of ONNX Runtime on the file Osprey exports from it, in
/// one run, on the same image (random, or <c>source</c> letterboxed): the forward and the head's post-processing (NMS
/// for YOLOv8/YOLO11, the top-k rows' confidence filter for YOLOv10) timed in the same runs, 3 warm-up runs, then
/// <c>runs</c> timed runs each; medians of each phase, mean, median and p90 of the total, and the ratios of the medians. Registered as <c>bench-predict</c>;
/// <c>osprey bench predict</c> is folded into that name.
/// </summary>
public sealed class BenchPredictCommand : ICliCommand
{
    /// <summary>Untimed runs before the timed ones.</summary>
    public const int Warmup = 3;

    public string Name => "bench-predict";
    public string Description => "batch-1 CPU latency with post-processing, TorchSharp (fused) vs ONNX Runtime on the export (osprey bench predict [model=yolov8n.yaml] [imgsz=640] [runs=20] [source=image])";

    public OspreyArgs Defaults() => new() { Model = "yolov8n.yaml" };

    public int Execute(OspreyArgs args, IAnsiConsole output)
    {
        string model = args.Model ?? "yolov8n.yaml";
        if (args.Runs < 1) throw new ArgumentsException($"runs={args.Runs}: bench predict needs runs ≥ 1");
        if (args.Device is { IsCuda: true } device)
            throw new ArgumentsException($"device={ArgsSchema.Format(device)}: bench predict times the CPU only (device=cpu)");
        var nms = new NmsOptions
        {
            ConfidenceThreshold = (float)(args.Conf ?? NmsOptions.PredictConfidence), IouThreshold = (float)args.Iou,
            MaxDetections = args.MaxDet,
        };
        string folder = Path.Combine(Path.GetTempPath(), $"osprey-bench-predict-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            using var bench = new PredictBenchmark(model, args.Imgsz, nms, args.Source);
            string onnx = Path.Combine(folder, "model.onnx");
            bench.Export(onnx);
            var torch = bench.TimeTorch(Warmup, args.Runs);
            var (ort, ortKept) = TimeOnnxRuntime(bench, onnx, args.Runs);
            var (kept, candidates) = bench.Count();

            var table = new Table().Border(TableBorder.Simple).AddColumn("backend")
                .AddColumn(new TableColumn("forward median ms").RightAligned())
                .AddColumn(new TableColumn("post-processing median ms").RightAligned())
                .AddColumn(new TableColumn("total: mean ms").RightAligned())
                .AddColumn(new TableColumn("median ms").RightAligned()).AddColumn(new TableColumn("p90 ms").RightAligned());
            foreach (var (name, (forward, post, total)) in new[] { ("TorchSharp (fused)", torch), ("ONNX Runtime (exported)", ort) })
                table.AddRow(name, F(forward.Median), F(post.Median), F(total.Mean), F(total.Median), F(total.P90));
            output.Write(table);
            string image = args.Source ?? "a random image";
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{model}: batch 1 at {args.Imgsz} on {image}, CPU ({Environment.ProcessorCount} cores, torch threads {PredictBenchmark.TorchThreads}), {Warmup} warm-up + {args.Runs} timed runs each"));
            output.WriteLine(bench.EndToEnd
                ? $"post-processing: end-to-end head (one-to-one top-{nms.MaxDetections}, no NMS), conf>{F(nms.ConfidenceThreshold)}: {kept} detections (ONNX Runtime {ortKept})"
                : $"post-processing: NMS (conf>{F(nms.ConfidenceThreshold)}, iou {F(nms.IouThreshold)}): {candidates} candidates, {kept} detections (ONNX Runtime {ortKept})");
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"ratio TorchSharp / ONNX Runtime (medians): forward {torch.Forward.Median / ort.Forward.Median:0.000}, total {torch.Total.Median / ort.Total.Median:0.000}"));
            return 0;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    // ONNX Runtime on the export, in the same runs: the session's run, then the same post-processing on its output
    // (copied into a tensor, as a TorchSharp pipeline would).
    static ((LatencyStats Forward, LatencyStats Postprocess, LatencyStats Total) Times, int Kept) TimeOnnxRuntime(
        PredictBenchmark bench, string onnx, int runs)
    {
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        using var session = new InferenceSession(onnx, options);
        var input = new DenseTensor<float>(bench.InputValues(), new[] { 1, 3, bench.ImageSize, bench.ImageSize });
        var inputs = new[] { NamedOnnxValue.CreateFromTensor("images", input) };
        int kept = 0;
        var times = Latency.MeasurePhases(lap =>
        {
            using var results = session.Run(inputs);
            lap();
            var output = results[0].AsTensor<float>();
            kept = bench.Postprocess(output.ToArray(), output.Dimensions.ToArray().Select(d => (long)d).ToArray());
        }, Warmup, runs);
        return (times, kept);
    }

    static string F(double ms) => ms.ToString("0.000", CultureInfo.InvariantCulture);
}
