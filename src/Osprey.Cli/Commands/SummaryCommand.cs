using System.Globalization;
using Osprey.Config;
using Osprey.Models;
using Spectre.Console;

namespace Osprey.Cli;

/// <summary><c>osprey summary model=yolov8n.yaml [nc=80] [imgsz=640]</c>: layer table, parameters, GFLOPs.</summary>
public sealed class SummaryCommand : ICliCommand
{
    public string Name => "summary";
    public string Description => "model layers, parameters and GFLOPs (model=yolov8n.yaml [nc=80] [imgsz=640])";

    public OspreyArgs Defaults() => new() { Model = "yolov8n.yaml" };

    public int Execute(OspreyArgs args, IAnsiConsole output)
    {
        string model = args.Model ?? throw new ArgumentsException("summary needs model=… (e.g. model=yolov8n.yaml)");
        var detector = ModelFactory.Create(model, args.Nc);
        var table = new Table().Border(TableBorder.Simple)
            .AddColumn(new TableColumn("").RightAligned()).AddColumn(new TableColumn("from").RightAligned())
            .AddColumn(new TableColumn("n").RightAligned()).AddColumn(new TableColumn("params").RightAligned())
            .AddColumn("module").AddColumn("arguments");
        foreach (LayerSummary layer in detector.Summary())
            table.AddRow(layer.Index.ToString(CultureInfo.InvariantCulture), Markup.Escape(layer.From),
                layer.Repeats.ToString(CultureInfo.InvariantCulture), N(layer.Parameters), Markup.Escape(layer.Module),
                Markup.Escape(layer.Arguments));
        output.Write(table);
        string name = ModelName(model, detector.Scale);
        // torch's modules() counts the model itself and each module once; Ultralytics' Convs share one SiLU
        // (Conv.default_act), other blocks (RepVGGDW) own theirs, and each deepcopy of a head's branches copies it once
        var all = detector.modules().ToList();
        var convActivations = all.OfType<Osprey.Models.Blocks.Conv>().Select(c => c.Activation).OfType<TorchSharp.Modules.SiLU>()
            .ToHashSet<object>(ReferenceEqualityComparer.Instance);
        int modules = 1 + all.Count(m => !convActivations.Contains(m)) + (convActivations.Count > 0 ? 1 + detector.Head.CopiedBranchLists : 0);
        double gflops = detector.Gflops(args.Imgsz);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{name} summary: {modules} layers, {N(detector.ParameterCount)} parameters, {N(detector.GradientCount)} gradients, {gflops:0.0} GFLOPs at {args.Imgsz} px (fused), nc={detector.Nc}"));
        return 0;
    }

    static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    static string ModelName(string model, string? scale)
    {
        string stem = Path.GetFileNameWithoutExtension(model);
        if (stem.StartsWith("yolo", StringComparison.OrdinalIgnoreCase)) stem = "YOLO" + stem[4..];
        return scale is not null && !stem.EndsWith(scale, StringComparison.Ordinal) ? stem + scale : stem;
    }
}
