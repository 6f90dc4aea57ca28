using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Osprey.Tests.Build;

/// <summary>
/// The project's size rules for everything under src/ (docs/architecture.md): no file over 400 lines, no method,
/// constructor, accessor or local function over 80 lines, counted from its declaration to its closing brace (documentation
/// comments not included), as Roslyn parses the file.
/// </summary>
public class SourceLimitsTests
{
    const int MaxFileLines = 400, MaxMethodLines = 80;

    static string SourceRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Osprey.sln"))) return Path.Combine(dir.FullName, "src");
        throw new DirectoryNotFoundException($"no Osprey.sln above {AppContext.BaseDirectory}");
    }

    /// <summary>Every source file of src/ with its text (build output left out).</summary>
    static IEnumerable<(string Path, string Text)> Sources()
    {
        string root = SourceRoot();
        foreach (string file in Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            string relative = Path.GetRelativePath(Path.GetDirectoryName(root)!, file);
            if (relative.Split(Path.DirectorySeparatorChar).Any(part => part is "obj" or "bin")) continue;
            yield return (relative, File.ReadAllText(file));
        }
    }

    // The members whose bodies the rule counts, with a name for the message.
    static IEnumerable<(SyntaxNode Node, string Name)> Members(SyntaxNode root) =>
        from node in root.DescendantNodes()
        let name = node switch
        {
            MethodDeclarationSyntax m => m.Identifier.Text,
            ConstructorDeclarationSyntax c => c.Identifier.Text + " (constructor)",
            OperatorDeclarationSyntax o => "operator " + o.OperatorToken.Text,
            AccessorDeclarationSyntax a => a.Keyword.Text + " accessor",
            LocalFunctionStatementSyntax f => f.Identifier.Text + " (local function)",
            _ => null,
        }
        where name is not null
        select (node, name);

    [Fact]
    public void NoFileOver400LinesAndNoMethodOver80()
    {
        var offenders = new List<string>();
        int files = 0, members = 0;
        foreach (var (path, text) in Sources())
        {
            files++;
            int lines = text.Count(c => c == '\n');
            if (lines > MaxFileLines) offenders.Add($"{path}: {lines} lines (at most {MaxFileLines})");
            foreach (var (node, name) in Members(CSharpSyntaxTree.ParseText(text).GetRoot()))
            {
                members++;
                var span = node.GetLocation().GetLineSpan();
                int length = span.EndLinePosition.Line - span.StartLinePosition.Line + 1;
                if (length > MaxMethodLines) offenders.Add($"{path}:{span.StartLinePosition.Line + 1} {name}: {length} lines (at most {MaxMethodLines})");
            }
        }
        Assert.True(files > 150 && members > 1000, $"only {files} files and {members} members read: is {SourceRoot()} the source tree?");
        Assert.True(offenders.Count == 0, string.Join('\n', offenders));
    }
}
