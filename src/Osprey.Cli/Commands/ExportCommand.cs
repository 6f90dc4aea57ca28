using Osprey.Config;
using Osprey.Export;
using Osprey.Models;
using Spectre.Console;

namespace Osprey.Cli;

/// <summary><c>osprey export model=… format=onnx [imgsz=640] [dynamic=False] [half=False] [opset=17] [batch=1]</c>.</summary>
public sealed class ExportCommand : ICliCommand
{
    public string Name => "export";
    public string Description => "export weights to ONNX (model=… format=onnx [imgsz=640] [dynamic=True] [half=True] [opset=17] [batch=1])";

    public OspreyArgs Defaults() => new() { Batch = 1 };

    public int Execute(OspreyArgs args, IAnsiConsole output)
    {
        string modelPath = args.Model ?? throw new ArgumentsException("export needs model=… (weights, YAML or .onnx)");
        if (!args.Format.Equals("onnx", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentsException($"format={args.Format}: only onnx is supported");
        using var model = ModelFactory.Create(modelPath);
        string path = Path.ChangeExtension(modelPath, null) + (Path.GetExtension(modelPath).Equals(".onnx", StringComparison.OrdinalIgnoreCase) ? ".osprey.onnx" : ".onnx");
        var options = new OnnxExportOptions
        {
            Height = args.Imgsz, Width = args.Imgsz, Batch = args.WholeBatch("export"), Dynamic = args.Dynamic, Half = args.Half, Opset = args.Opset,
        };
        OnnxExporter.Export(model, path, options);
        output.WriteLine($"ONNX: export success, saved as {path} ({new FileInfo(path).Length / 1e6:0.0} MB), opset {args.Opset}" +
                         (args.Dynamic ? ", dynamic batch and size" : $", input ({args.Batch}, 3, {args.Imgsz}, {args.Imgsz})"));
        return 0;
    }
}
