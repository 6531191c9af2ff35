module mysql-operator/hack/images/pause

go 1.26
