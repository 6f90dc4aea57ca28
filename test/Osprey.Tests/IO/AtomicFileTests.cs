using Osprey.IO;
using Osprey.Training;

namespace Osprey.Tests.IO;

public class AtomicFileTests
{
    [Fact]
    public void CrashMidWriteLeavesThePreviousFileIntactAndNoTemporaries()
    {
        string dir = Directory.CreateTempSubdirectory("osprey-atomic").FullName;
        string path = Path.Combine(dir, "last.ckpt");
        AtomicFile.WriteAllText(path, "good checkpoint");
        Assert.Throws<IOException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write(new byte[1000]);
            throw new IOException("disk full (simulated)");
        }));
        Assert.Equal("good checkpoint", File.ReadAllText(path));
        Assert.Equal(new[] { path }, Directory.GetFiles(dir));
        AtomicFile.WriteAllText(path, "newer");
        Assert.Equal("newer", File.ReadAllText(path));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void RunFoldersAreNumberedLikeUltralytics()
    {
        string project = Directory.CreateTempSubdirectory("osprey-runs").FullName;
        Assert.Equal(Path.Combine(project, "train"), RunDirectory.Create(project, null, "train"));
        Assert.Equal(Path.Combine(project, "train2"), RunDirectory.Create(project, null, "train"));
        Assert.Equal(Path.Combine(project, "train3"), RunDirectory.Create(project, null, "train"));
        Assert.Equal(Path.Combine(project, "exp"), RunDirectory.Create(project, "exp", "train"));
        Assert.Equal(Path.Combine(project, "exp"), RunDirectory.Create(project, "exp", "train", existOk: true));
        Directory.Delete(project, true);
    }
}
