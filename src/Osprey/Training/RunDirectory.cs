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
