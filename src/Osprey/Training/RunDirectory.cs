namespace Osprey.Training;

/// <summary>Run folders as Ultralytics names them: runs/detect/train, train2, train3 … (or project/name).</summary>
public static class RunDirectory
{
    /// <summary>
    /// The folder for a new run: <c>project/name</c> when it does not exist (or <paramref name="existOk"/>), else the
    /// first free <c>project/nameN</c> for N = 2, 3, …. Creates it.
    /// </summary>
    public static string Create(string? project, string? name, string defaultName, bool existOk = false)
    {
        string root = project ?? Path.Combine("runs", "detect");
        string baseName = name ?? defaultName;
        string path = Path.Combine(root, baseName);
        if (!existOk)
            for (int n = 2; Directory.Exists(path); n++) path = Path.Combine(root, baseName + n);
        Directory.CreateDirectory(path);
        return path;
    }
}

/// <summary>The files of a training run's folder.</summary>
/// <param name="Directory">The run folder.</param>
public sealed record RunFiles(string Directory)
{
    /// <summary>weights/.</summary>
    public string Weights => Path.Combine(Directory, "weights");

    /// <summary>weights/last.safetensors: the EMA after the last epoch.</summary>
    public string Last => Path.Combine(Weights, "last.safetensors");

    /// <summary>weights/best.safetensors: the EMA of the best epoch by fitness.</summary>
    public string Best => Path.Combine(Weights, "best.safetensors");

    /// <summary>weights/last.ckpt: the full-state checkpoint for resume.</summary>
    public string Checkpoint => Path.Combine(Weights, "last.ckpt");

    /// <summary>weights/last.pt and weights/best.pt (<c>save_pt=True</c>): the same weights as a torch.load-able checkpoint.</summary>
    public string TorchCheckpoint(string safetensors) => Path.ChangeExtension(safetensors, ".pt");

    /// <summary>weights/epochN.safetensors (<c>save_period</c>).</summary>
    public string EpochWeights(int epoch) => Path.Combine(Weights, $"epoch{epoch}.safetensors");

    /// <summary>args.yaml.</summary>
    public string Args => Path.Combine(Directory, "args.yaml");

    /// <summary>results.csv.</summary>
    public string Results => Path.Combine(Directory, "results.csv");

    /// <summary>step_times.csv.</summary>
    public string StepTimes => Path.Combine(Directory, StepTimesCsv.FileName);
}
