using System.Collections;
using System.Globalization;
using Osprey.Models;
using Osprey.Models.Building;
using Razorvine.Pickle.Objects;
using static TorchSharp.torch;

namespace Osprey.Interop;

/// <summary>
/// An Ultralytics <c>.pt</c> checkpoint (what <c>torch.save</c> writes in its trainer: a dict with <c>date</c>,
/// <c>version</c>, <c>model</c> = the whole pickled <c>DetectionModel</c> in fp16, <c>ema</c>, <c>train_args</c>, …), or one
/// Osprey wrote with <c>save_pt=True</c> (<c>model_state</c>, <c>yaml</c>, <c>names</c>; see docs/interop.md), read under
/// <see cref="PickleGlobals"/>' restricted class map. The module tree (<c>ckpt.get("ema") or ckpt["model"]</c>, as
/// Ultralytics' attempt_load) is walked through its <c>_modules</c>, <c>_parameters</c> and persistent <c>_buffers</c> into
/// state-dict keys (<c>model.0.conv.weight</c>, which are Osprey's), floating tensors in fp32; the architecture is the
/// model's <c>yaml</c> dict, the classes its <c>names</c>.
/// </summary>
public sealed class UltralyticsCheckpoint : IDisposable
{
    private const int MaxModuleDepth = 64;

    private readonly UnpickledFile _file;
    private readonly Dictionary<string, Tensor> _state;

    private UltralyticsCheckpoint(UnpickledFile file, Dictionary<string, Tensor> state, string path)
    {
        _file = file;
        _state = state;
        Path = path;
    }

    /// <summary>The file read.</summary>
    public string Path { get; }

    /// <summary>Key → fp32 (or integer) tensor, Ultralytics' (= Osprey's) state-dict keys.</summary>
    public IReadOnlyDictionary<string, Tensor> State => _state;

    /// <summary>Which entry the weights came from: <c>ema</c>, <c>model</c>, <c>model_state</c>, or <c>state_dict</c> (a plain one).</summary>
    public string WeightsFrom { get; private set; } = "";

    /// <summary>The model's YAML rebuilt from its <c>yaml</c> dict (with <c>names</c>), for <see cref="ModelConfig.Parse"/>.</summary>
    public string Yaml { get; private set; } = "";

    /// <summary>The class names (<c>names</c>), index order.</summary>
    public IReadOnlyList<string> Names { get; private set; } = Array.Empty<string>();

    /// <summary>The training arguments (<c>train_args</c>), empty when absent.</summary>
    public IReadOnlyDictionary<string, object?> TrainArgs { get; private set; } = new Dictionary<string, object?>();

    /// <summary><c>date</c>, <c>version</c> and <c>epoch</c> where present.</summary>
    public string? Date { get; private set; }

    /// <inheritdoc cref="Date"/>
    public string? Version { get; private set; }

    /// <inheritdoc cref="Date"/>
    public int? Epoch { get; private set; }

    /// <summary><c>best_fitness</c> where present (a float or numpy float64 in Ultralytics' training-time files).</summary>
    public double? BestFitness { get; private set; }

    /// <summary>
    /// Reads <paramref name="path"/> when it is a checkpoint; null when it is a plain state dict (key → tensor), which
    /// <see cref="ModelWeights"/> reads.
    /// </summary>
    /// <exception cref="InvalidDataException">A refused global, a malformed file, or a checkpoint without weights or yaml.</exception>
    public static UltralyticsCheckpoint? TryRead(string path)
    {
        var checkpoint = Read(path);
        if (checkpoint.HasArchitecture) return checkpoint;
        checkpoint.Dispose();
        return null;
    }

    /// <summary>Reads a checkpoint, or a plain state dict (<see cref="HasArchitecture"/> false, <see cref="WeightsFrom"/> <c>state_dict</c>).</summary>
    /// <exception cref="InvalidDataException">A refused global, a malformed file, or neither a state dict nor a checkpoint.</exception>
    public static UltralyticsCheckpoint Read(string path)
    {
        var file = TorchUnpickler.Load(path);
        var checkpoint = new UltralyticsCheckpoint(file, new Dictionary<string, Tensor>(), path);
        try
        {
            if (file.Root is not IDictionary root)
                throw new InvalidDataException($"{path}: the pickle holds {file.Root?.GetType().Name ?? "None"}, not a state dict or a checkpoint dict.");
            if (root.Values.Cast<object?>().All(v => v is Tensor))
            {
                checkpoint.WeightsFrom = "state_dict";
                foreach (var key in checkpoint.Keys(root)) checkpoint.Add(key, (Tensor)root[key]!, "the state dict");
            }
            else checkpoint.Populate(root);
            return checkpoint;
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>Whether the file names its architecture (a checkpoint with a <c>yaml</c>), not only tensors.</summary>
    public bool HasArchitecture => Yaml.Length > 0;

    /// <summary>The model config with the checkpoint's names; <paramref name="nc"/> overrides its class count.</summary>
    public ModelConfig Config(int? nc = null)
    {
        var named = ModelConfig.Parse(Yaml, $"{Path} (yaml)");
        return nc is null || nc == named.Nc ? named : ModelConfig.Parse(Yaml, $"{Path} (yaml)", named.Scale, nc);
    }

    /// <summary>
    /// Builds the model from the checkpoint's yaml and loads its weights: strictly at the checkpoint's class count, else
    /// (another <paramref name="nc"/>, e.g. fine-tuning on a new dataset) every tensor whose key and shape match, as
    /// Ultralytics' <c>model.load(weights)</c>. Returns the model and how many tensors were transferred.
    /// </summary>
    public (DetectionModel Model, int Transferred) CreateModel(int? nc = null)
    {
        var config = Config(nc);
        var model = new DetectionModel(config);
        try
        {
            if (config.Nc != Config().Nc) return (model, ModelWeights.LoadMatching(model, _state));
            int loaded = ModelWeights.Load(model, _state, Path);
            // What it was trained on, as Ultralytics keeps it: train_args["data"] and the model's names.
            model.Trained = new TrainedOn(TrainArgs.GetValueOrDefault("data") as string, Names.Count == config.Nc ? Names : null);
            return (model, loaded);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var tensor in _state.Values) tensor.Dispose();
        _file.Dispose();
    }

    private void Populate(IDictionary root)
    {
        Date = root["date"] as string;
        Version = root["version"] as string;
        Epoch = root["epoch"] is int epoch ? epoch : null;
        BestFitness = root["best_fitness"] is double fitness ? fitness : null;
        if (root["train_args"] is IDictionary args)
            TrainArgs = CheckpointYaml.Entries(args).ToDictionary(e => Convert.ToString(e.Key, CultureInfo.InvariantCulture)!, e => e.Value);
        IDictionary? yaml;
        object? names;
        if ((root["ema"] ?? root["model"]) is ClassDict model)                  // Ultralytics: ckpt.get("ema") or ckpt["model"]
        {
            WeightsFrom = root["ema"] is ClassDict ? "ema" : "model";
            Collect(model, "", 0);
            yaml = model.GetValueOrDefault("yaml") as IDictionary;
            names = model.GetValueOrDefault("names");
        }
        else if (root["model_state"] is IDictionary state)
        {
            WeightsFrom = "model_state";
            foreach (var key in Keys(state)) Add(key, state[key] as Tensor, "model_state");
            yaml = root["yaml"] as IDictionary;
            names = root["names"];
        }
        else throw new InvalidDataException($"{Path}: a dict without 'ema', 'model' (a pickled module) or 'model_state' is not an Ultralytics checkpoint " +
            $"(keys: {string.Join(", ", root.Keys.Cast<object>())}).");
        if (yaml is null) throw new InvalidDataException($"{Path}: the checkpoint's model has no 'yaml' (its architecture).");
        Names = ReadNames(names);
        Yaml = CheckpointYaml.ToText(yaml, Names);
    }

    // A module's parameters, persistent buffers and submodules, depth first (Module.state_dict's keys). The depth limit
    // also ends a pickle whose module tree refers back to itself.
    private void Collect(ClassDict module, string prefix, int depth)
    {
        if (depth > MaxModuleDepth)
            throw new InvalidDataException($"{Path}: the module tree is deeper than {MaxModuleDepth} levels at '{prefix}' (or refers back to itself).");
        string what = module.ClassName;
        var nonPersistent = (module.GetValueOrDefault("_non_persistent_buffers_set") as IEnumerable)?.Cast<object>().ToHashSet() ?? new HashSet<object>();
        foreach (var (slot, persistentOnly) in new[] { ("_parameters", false), ("_buffers", true) })
        {
            if (module.GetValueOrDefault(slot) is not IDictionary tensors) continue;
            foreach (var key in Keys(tensors))
                if (!(persistentOnly && nonPersistent.Contains(key))) Add(prefix + key, tensors[key] as Tensor, what);
        }
        if (module.GetValueOrDefault("_modules") is not IDictionary children) return;
        foreach (var key in Keys(children))
            if (children[key] is ClassDict child) Collect(child, $"{prefix}{key}.", depth + 1);
    }

    private IEnumerable<string> Keys(IDictionary dict) =>
        dict.Keys.Cast<object>().Select(k => k as string ?? throw new InvalidDataException($"{Path}: a state-dict key {k} is not a string."));

    private void Add(string key, Tensor? tensor, string what)
    {
        if (tensor is null) return;
        if (tensor.is_floating_point() && tensor.dtype != ScalarType.Float32)
            _state[key] = tensor.to_type(ScalarType.Float32);                  // fp16 → fp32 (Ultralytics' .float())
        else _state[key] = tensor.alias();
        if (_state.Count > 100_000) throw new InvalidDataException($"{Path}: too many tensors (at {key} in {what}).");
    }

    private IReadOnlyList<string> ReadNames(object? names) => names switch
    {
        IDictionary map => CheckpointYaml.Entries(map).OrderBy(e => Convert.ToInt64(e.Key, CultureInfo.InvariantCulture))
            .Select(e => Convert.ToString(e.Value, CultureInfo.InvariantCulture) ?? "").ToArray(),
        IEnumerable list and not string => list.Cast<object>().Select(n => Convert.ToString(n, CultureInfo.InvariantCulture) ?? "").ToArray(),
        _ => Array.Empty<string>(),
    };
}
