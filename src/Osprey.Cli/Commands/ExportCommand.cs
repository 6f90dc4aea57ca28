using Osprey.Config;
using Osprey.Models;
using Osprey.Onnx;
using Osprey.Runtime;
using Spectre.Console;
using TorchSharp;

namespace Osprey.Cli;

/// <summary>
/// <c>osprey export model=… format=onnx [imgsz=640] [dynamic=False] [half=False] [opset=17] [batch=1] [device=cpu]</c>. As in
/// Ultralytics, an export runs on the CPU unless <c>device=</c> names a GPU, and <c>half=True</c> needs a GPU (warned and
/// turned off on the CPU).
/// </summary>
public sealed class ExportCommand : ICliCommand
{
    public string Name => "export";
    public string Description => "export weights to ONNX (model=… format=onnx [imgsz=640] [dynamic=True] [half=True] [opset=17] [batch=1])";

    public OspreyArgs Defaults() => new() { Batch = 1 };

    public int Execute(OspreyArgs args, IAnsiConsole output)
    {
        string modelPath = args.Model ?? throw new ArgumentsException("export needs model=… (weights, YAML or .onnx)");
        if (args.Opset is < OnnxExporter.MinOpset or > OnnxExporter.MaxOpset)
            throw new ArgumentsException($"opset={args.Opset}: Osprey exports ONNX opsets {OnnxExporter.MinOpset} … {OnnxExporter.MaxOpset}.");
        using var model = ModelFactory.Create(modelPath);
        string path = Path.ChangeExtension(modelPath, null) + (Path.GetExtension(modelPath).Equals(".onnx", StringComparison.OrdinalIgnoreCase) ? ".osprey.onnx" : ".onnx");
        bool cuda = args.Device is not null && args.Device.Resolve().type == DeviceType.CUDA;
        var options = OnnxExporter.ForDevice(new OnnxExportOptions
        {
            Height = args.Imgsz, Width = args.Imgsz, Batch = args.WholeBatch("export"), Dynamic = args.Dynamic, Half = args.Half, Opset = args.Opset,
        }, cuda, out string? warning);
        if (warning is not null) output.MarkupLine($"[yellow]WARNING ⚠️ {Markup.Escape(warning)}[/]");
        OnnxExporter.Export(model, path, options);
        output.WriteLine($"ONNX: export success, saved as {path} ({new FileInfo(path).Length / 1e6:0.0} MB), opset {options.Opset}{(options.Half ? ", float16" : "")}" +
                         (args.Dynamic ? ", dynamic batch and size" : $", input ({options.Batch}, 3, {args.Imgsz}, {args.Imgsz})"));
        return 0;
    }
}
