using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Osprey.Benchmarks;
using Osprey.Config;
using Osprey.Inference;
using Spectre.Console;

namespace Osprey.Cli;

/// <summary>
/// <c>osprey bench predict [model=yolov8n.yaml] [imgsz=640] [runs=20]</c>: batch-1 latency on the CPU of the fused
/// TorchSharp model and of ONNX Runtime on the file Osprey exports from it, in one run, on the same random image:
/// 3 warm-up runs, then <c>runs</c> timed runs each; mean, median, p90 and the ratio of the medians. Registered as
/// <c>bench-predict</c>; <c>osprey bench predict</c> is folded into that name.
/// </summary>
public sealed class BenchPredictCommand : ICliCommand
{
    /// <summary>Untimed runs before the timed ones.</summary>
    public const int Warmup = 3;

    public string Name => "bench-predict";
    public string Description => "batch-1 CPU latency, TorchSharp (fused) vs ONNX Runtime on the export (osprey bench predict [model=yolov8n.yaml] [imgsz=640] [runs=20])";

    public OspreyArgs Defaults() => new() { Model = "yolov8n.yaml" };

    public int Execute(OspreyArgs args, IAnsiConsole output)
    {
        string model = args.Model ?? "yolov8n.yaml";
        if (args.Runs < 1) throw new ArgumentsException($"runs={args.Runs}: bench predict needs runs ≥ 1");
        if (args.Device is { IsCuda: true } device)
            throw new ArgumentsException($"device={ArgsSchema.Format(device)}: bench predict times the CPU only (device=cpu)");
        string folder = Path.Combine(Path.GetTempPath(), $"osprey-bench-predict-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            using var bench = new PredictBenchmark(model, args.Imgsz);
            string onnx = Path.Combine(folder, "model.onnx");
            bench.Export(onnx);
            var torch = bench.TimeTorch(Warmup, args.Runs);

            using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
            using var session = new InferenceSession(onnx, options);
            var input = new DenseTensor<float>(bench.InputValues(), new[] { 1, 3, bench.ImageSize, bench.ImageSize });
            var inputs = new[] { NamedOnnxValue.CreateFromTensor("images", input) };
            var ort = Latency.Measure(() =>
            {
                using var results = session.Run(inputs);
            }, Warmup, args.Runs);

            var table = new Table().Border(TableBorder.Simple).AddColumn("backend")
                .AddColumn(new TableColumn("mean ms").RightAligned()).AddColumn(new TableColumn("median ms").RightAligned())
                .AddColumn(new TableColumn("p90 ms").RightAligned());
            table.AddRow("TorchSharp (fused)", F(torch.Mean), F(torch.Median), F(torch.P90));
            table.AddRow("ONNX Runtime (exported)", F(ort.Mean), F(ort.Median), F(ort.P90));
            output.Write(table);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{model}: batch 1 at {args.Imgsz}, CPU ({Environment.ProcessorCount} cores, torch threads {PredictBenchmark.TorchThreads}), {Warmup} warm-up + {args.Runs} timed runs each"));
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ratio TorchSharp / ONNX Runtime (medians): {torch.Median / ort.Median:0.000}"));
            return 0;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    static string F(double ms) => ms.ToString("0.000", CultureInfo.InvariantCulture);
}
