using System.Globalization;
using Osprey.Data;
using Osprey.Runtime;

namespace Osprey.Config;

/// <summary><c>optimizer=</c>: what trains the weights (Ultralytics' names).</summary>
public enum OptimizerChoice
{
    /// <summary>AdamW for runs of at most 10 000 iterations, else SGD (Ultralytics' <c>auto</c>).</summary>
    Auto,
    /// <summary>SGD with Nesterov momentum.</summary>
    SGD,
    /// <summary>AdamW (decoupled weight decay).</summary>
    AdamW,
}

/// <summary><c>amp_dtype=</c>: the mixed-precision dtype (Osprey's; Ultralytics always autocasts to fp16).</summary>
public enum AmpDtype
{
    /// <summary>bf16 where the GPU has it, else fp16 with loss scaling.</summary>
    Auto,
    /// <summary>bfloat16.</summary>
    BF16,
    /// <summary>float16 with dynamic loss scaling.</summary>
    FP16,
}

/// <summary><c>format=</c>: the export formats Osprey writes.</summary>
public enum ExportFormat
{
    /// <summary>ONNX.</summary>
    Onnx,
}

/// <summary><c>search=</c>: how <c>osprey tune</c> picks its trials.</summary>
public enum SearchMethod
{
    /// <summary>Ultralytics' genetic tuner (<c>model.tune()</c>): each trial mutates one of the best trials so far.</summary>
    Genetic,
    /// <summary>Random trials from the space, stopped early by asynchronous successive halving (Ray Tune's ASHA, as
    /// Ultralytics' <c>model.tune(use_ray=True)</c> sets it up).</summary>
    Asha,
}

/// <summary><c>resume=</c>: a fresh run (False), the newest checkpoint under the project (True), or a checkpoint path.</summary>
/// <param name="Latest">resume=True.</param>
/// <param name="Checkpoint">A checkpoint path, or null.</param>
public sealed record ResumeSetting(bool Latest, string? Checkpoint)
{
    /// <summary>resume=False: a fresh run.</summary>
    public static ResumeSetting Off { get; } = new(false, null);

    /// <summary>True unless resume=False.</summary>
    public bool Enabled => Latest || Checkpoint is not null;

    /// <summary>The checkpoint <paramref name="path"/>.</summary>
    public static ResumeSetting From(string path) => new(false, path);

    /// <inheritdoc/>
    public override string ToString() => Checkpoint ?? (Latest ? "True" : "False");
}

/// <summary><c>pretrained=</c>: Ultralytics' True or False (which change nothing: <c>model=</c> weights are loaded either way)
/// or a weights file whose tensors are loaded into the model where name and shape match.</summary>
/// <param name="Enabled">True or False as given.</param>
/// <param name="Weights">A weights path, or null.</param>
public sealed record PretrainedWeights(bool Enabled, string? Weights)
{
    /// <summary>pretrained=True.</summary>
    public static PretrainedWeights Default { get; } = new(true, null);

    /// <inheritdoc/>
    public override string ToString() => Weights ?? (Enabled ? "True" : "False");
}

/// <summary><c>freeze=</c>: the first N layers (<c>freeze=10</c>) or a list of layer indices (<c>freeze=[0,3,5]</c>).</summary>
/// <param name="Count">freeze=N, or null for a list.</param>
/// <param name="Indices">The layer indices frozen.</param>
public sealed record FreezeLayers(int? Count, IReadOnlyList<int> Indices)
{
    /// <inheritdoc/>
    public override string ToString() => Count is { } n ? n.ToString(CultureInfo.InvariantCulture) : $"[{string.Join(", ", Indices)}]";
}

/// <summary><c>classes=</c>: the class indices predictions keep (e.g. <c>classes=0,2</c>).</summary>
/// <param name="Indices">The class indices.</param>
public sealed record ClassFilter(IReadOnlyList<int> Indices)
{
    /// <inheritdoc/>
    public override string ToString() => string.Join(",", Indices);
}

/// <summary>
/// The argument types that are not plain numbers, strings or bools: each is parsed from its text when the arguments are
/// parsed (a bad value is an <see cref="ArgumentsException"/> naming the argument) and written back as text that parses
/// to the same value (args.yaml, the command line of launched ranks).
/// </summary>
public static class ArgumentValues
{
    sealed record Kind(Func<string, string, object> Parse, Func<object, string> Format);

    static readonly Dictionary<Type, Kind> Kinds = new()
    {
        [typeof(ImageCacheMode)] = new(ParseCache, v => (ImageCacheMode)v switch { ImageCacheMode.None => "False", ImageCacheMode.Ram => "ram", _ => "disk" }),
        [typeof(OptimizerChoice)] = new(ParseOptimizer, v => (OptimizerChoice)v == OptimizerChoice.Auto ? "auto" : v.ToString()!),
        [typeof(AmpDtype)] = new(ParseAmpDtype, v => ((AmpDtype)v).ToString().ToLowerInvariant()),
        [typeof(DatasetSplit)] = new(ParseSplit, v => v.ToString()!.ToLowerInvariant()),
        [typeof(ExportFormat)] = new(ParseFormat, v => v.ToString()!.ToLowerInvariant()),
        [typeof(SearchMethod)] = new(ParseSearch, v => v.ToString()!.ToLowerInvariant()),
        [typeof(DeviceRequest)] = new(ParseDevice, v => ((DeviceRequest)v).IsCuda ? string.Join(',', ((DeviceRequest)v).CudaIndices) : "cpu"),
        [typeof(ResumeSetting)] = new(ParseResume, v => v.ToString()!),
        [typeof(PretrainedWeights)] = new(ParsePretrained, v => v.ToString()!),
        [typeof(FreezeLayers)] = new(ParseFreeze, v => v.ToString()!),
        [typeof(ClassFilter)] = new((text, key) => new ClassFilter(ParseIndices(text, key, "class indices like 0,2")), v => v.ToString()!),
    };

    /// <summary>True when <paramref name="type"/> is one of these types.</summary>
    public static bool Handles(Type type) => Kinds.ContainsKey(type);

    /// <summary>The value of <paramref name="text"/> for argument <paramref name="key"/> of <paramref name="type"/>.</summary>
    /// <exception cref="ArgumentsException">Not a value of that argument.</exception>
    public static object Parse(Type type, string text, string key) => Kinds[type].Parse(text, key);

    /// <summary>The text of <paramref name="value"/>.</summary>
    public static string Format(object value) => Kinds[value.GetType()].Format(value);

    static object ParseCache(string text, string key) => text.ToLowerInvariant() switch
    {
        "false" or "none" or "0" => ImageCacheMode.None,
        "true" or "ram" or "1" => ImageCacheMode.Ram,
        "disk" => ImageCacheMode.Disk,
        _ => throw Bad(key, text, "False, ram or disk"),
    };

    static object ParseOptimizer(string text, string key) => text.ToLowerInvariant() switch
    {
        "auto" => OptimizerChoice.Auto,
        "sgd" => OptimizerChoice.SGD,
        "adamw" => OptimizerChoice.AdamW,
        "adam" or "adamax" or "nadam" or "radam" or "rmsprop" => throw new ArgumentsException($"{key}={text} is not supported yet: use SGD, AdamW or auto"),
        _ => throw Bad(key, text, "SGD, AdamW or auto"),
    };

    static object ParseAmpDtype(string text, string key) => text.ToLowerInvariant() switch
    {
        "auto" or "" => AmpDtype.Auto,
        "bf16" or "bfloat16" => AmpDtype.BF16,
        "fp16" or "float16" or "half" => AmpDtype.FP16,
        _ => throw Bad(key, text, "auto, bf16 or fp16 (amp=False for fp32)"),
    };

    static object ParseSplit(string text, string key) => text.ToLowerInvariant() switch
    {
        "train" => DatasetSplit.Train,
        "val" => DatasetSplit.Val,
        "test" => DatasetSplit.Test,
        _ => throw Bad(key, text, "val, test or train"),
    };

    static object ParseFormat(string text, string key) => text.ToLowerInvariant() switch
    {
        "onnx" => ExportFormat.Onnx,
        _ => throw new ArgumentsException($"{key}={text}: only onnx is supported"),
    };

    static object ParseSearch(string text, string key) => text.ToLowerInvariant() switch
    {
        "genetic" => SearchMethod.Genetic,
        "asha" => SearchMethod.Asha,
        _ => throw Bad(key, text, "genetic or asha"),
    };

    static object ParseDevice(string text, string key)
    {
        try
        {
            return DeviceRequest.Parse(text);
        }
        catch (DeviceException e)
        {
            throw new ArgumentsException(e.Message);
        }
    }

    static object ParseResume(string text, string key) => text.ToLowerInvariant() switch
    {
        "false" or "0" or "no" => ResumeSetting.Off,
        "true" or "1" or "yes" => new ResumeSetting(true, null),
        _ => ResumeSetting.From(text),
    };

    static object ParsePretrained(string text, string key) => text.ToLowerInvariant() switch
    {
        "true" or "1" or "yes" => PretrainedWeights.Default,
        "false" or "0" or "no" => new PretrainedWeights(false, null),
        _ => new PretrainedWeights(true, text),
    };

    static object ParseFreeze(string text, string key)
    {
        bool list = text.StartsWith('[') || text.Contains(',');
        var indices = ParseIndices(text, key, "a layer count or a list of layer indices like [0,3,5]");
        if (list) return new FreezeLayers(null, indices);
        if (indices.Count != 1) throw Bad(key, text, "a layer count or a list of layer indices like [0,3,5]");
        return new FreezeLayers(indices[0], Enumerable.Range(0, indices[0]).ToArray());
    }

    static IReadOnlyList<int> ParseIndices(string text, string key, string expected)
    {
        var parts = text.Trim('[', ']', ' ').Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var indices = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out indices[i])) throw Bad(key, text, expected);
        return indices;
    }

    static ArgumentsException Bad(string key, string text, string expected) =>
        new($"'{key}={text}' is not valid: {key} takes {expected}");
}
