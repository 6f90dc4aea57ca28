// osprey bench predict: batch-1 latency at imgsz (default 640) on the CPU of TorchSharp (fused model) and ONNX Runtime
// on the file Osprey exports from the same model, in one run.
// dotnet run -c Release --project bench/Osprey.Bench -- predict [model=yolov8n.yaml|path] [imgsz=640] [runs=20]
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Osprey.Export;
using Osprey.Models;
using static TorchSharp.torch;

var options = args.Skip(1).Select(a => a.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
if (args.FirstOrDefault() != "predict") { Console.Error.WriteLine("usage: bench predict [model=…] [imgsz=640] [runs=20]"); return 2; }
string modelPath = options.GetValueOrDefault("model", "yolov8n.yaml");
int size = int.Parse(options.GetValueOrDefault("imgsz", "640"), CultureInfo.InvariantCulture);
int runs = int.Parse(options.GetValueOrDefault("runs", "20"), CultureInfo.InvariantCulture);

using var model = modelPath.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase) ? OnnxImport.Load(modelPath, emulateQuantization: false) : ModelFactory.Create(modelPath);
model.eval();
model.Fuse();
string onnx = Path.Combine(Path.GetTempPath(), $"osprey-bench-{Environment.ProcessId}.onnx");
OnnxExporter.Export(model, onnx, new OnnxExportOptions { Height = size, Width = size });
manual_seed(0);
using var input = rand(1, 3, size, size);
var data = input.data<float>().ToArray();

double Time(Action action)
{
    for (int i = 0; i < 3; i++) action();
    var times = new List<double>();
    for (int i = 0; i < runs; i++)
    {
        var sw = Stopwatch.StartNew();
        action();
        times.Add(sw.Elapsed.TotalMilliseconds);
    }
    times.Sort();
    return times[times.Count / 2];
}

double torchMs = Time(() =>
{
    using var scope = NewDisposeScope();
    using var noGrad = no_grad();
    model.Predict(input);
});
using var session = new InferenceSession(onnx, new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL });
var tensorInput = new DenseTensor<float>(data, new[] { 1, 3, size, size });
double ortMs = Time(() =>
{
    using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor("images", tensorInput) });
});
File.Delete(onnx);
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"bench predict: {modelPath} batch 1 at {size}, CPU ({Environment.ProcessorCount} cores, torch threads {get_num_threads()}), median of {runs}"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  TorchSharp (fused)      {torchMs,8:0.0} ms"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  ONNX Runtime (exported) {ortMs,8:0.0} ms"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  ratio TorchSharp / ORT  {torchMs / ortMs,8:0.00}"));
return 0;
